#!/bin/sh
# The compose broker: Apache Kafka's own start script in the background,
# then, through the broker's loopback listener (plaintext, reachable from
# inside this container only), the SCRAM-SHA-512 users, the topics and the
# ACLs; the healthcheck passes once they exist. Every run does it again
# (each step is idempotent), so a changed password in .env takes effect at
# the next start. Passwords must not contain `,`, `[` or `]` (kafka-configs
# syntax).
set -eu
ready=/tmp/mart-kafka-ready
rm -f "$ready"
/etc/kafka/docker/run &
broker=$!
trap 'kill -TERM "$broker"; wait "$broker"; exit 0' TERM INT
bin=/opt/kafka/bin
local_listener="--bootstrap-server 127.0.0.1:19092"
until "$bin/kafka-broker-api-versions.sh" $local_listener >/dev/null 2>&1; do
  kill -0 "$broker" 2>/dev/null || exit 1
  sleep 2
done
"$bin/kafka-configs.sh" $local_listener --alter --entity-type users --entity-name mart \
  --add-config "SCRAM-SHA-512=[password=${MART_KAFKA_PASSWORD}]"
"$bin/kafka-configs.sh" $local_listener --alter --entity-type users --entity-name mart-ui \
  --add-config "SCRAM-SHA-512=[password=${MART_KAFKA_UI_PASSWORD}]"
# One topic per aggregate type; the key is the aggregate id, so one order's
# events stay ordered on one partition.
for topic in mart.users mart.catalog mart.orders mart.inventory mart.payments mart.notifications \
  mart.orders.dlq mart.inventory.dlq mart.payments.dlq mart.users.dlq; do
  "$bin/kafka-topics.sh" $local_listener --create --if-not-exists --topic "$topic" \
    --partitions 6 --replication-factor 1
done
# The host (`mart`, every component and the outbox relay in one process):
# the app's topics and consumer groups only. The Kafka UI: reads only.
acl() { "$bin/kafka-acls.sh" $local_listener --add "$@" >/dev/null; }
acl --allow-principal User:mart --operation Read --operation Write --operation Describe \
  --operation Create --topic mart. --resource-pattern-type prefixed
acl --allow-principal User:mart --operation Read --operation Describe \
  --group mart. --resource-pattern-type prefixed
acl --allow-principal User:mart-ui --operation Read --operation Describe --operation DescribeConfigs \
  --topic '*'
acl --allow-principal User:mart-ui --operation Describe --group '*'
acl --allow-principal User:mart-ui --operation Describe --operation DescribeConfigs --cluster
touch "$ready"
wait "$broker"
