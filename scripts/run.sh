#!/usr/bin/env bash
# `make run` (scripts/run.sh mart) and `make spin-up` (scripts/run.sh spin):
# the whole app on this machine, on Mart's host or on Fermyon Spin with Mart's
# trigger plugins. Without MART_DATABASE_URL it starts a throwaway PostgreSQL
# cluster under .mart/ (stopped on exit); without SPIN_VARIABLE_KAFKA_BROKERS
# it starts a Kafka-protocol broker (tansu) under .mart/kafka.
set -euo pipefail
cd "$(dirname "$0")/.."
runner=${1:-mart}

if [ "$runner" = spin ]; then
  if ! command -v spin >/dev/null; then
    echo "make spin-up needs Fermyon Spin 4 on PATH (https://spinframework.dev/install);" >&2
    echo "without it, run the same app with Mart's host: make run" >&2
    exit 1
  fi
  # Mart's triggers as Spin plugins, from this checkout's build.
  for plugin in trigger-kafka trigger-timer; do
    spin plugins install --file "target/spin-plugins/$plugin.json" --yes
  done
fi

PG_PORT=${MART_PG_PORT:-54329}
KAFKA_PORT=${MART_KAFKA_PORT:-19092}
LISTEN=${MART_LISTEN:-127.0.0.1:3000}
started_pg=""
started_kafka=""

if [ -z "${MART_DATABASE_URL:-}" ]; then
  scripts/postgres.sh start .mart/pg "$PG_PORT"
  started_pg=1
  export MART_DATABASE_URL="postgres://mart@127.0.0.1:$PG_PORT/postgres"
  export SPIN_VARIABLE_PG_PORT=$PG_PORT
fi
if [ -z "${SPIN_VARIABLE_KAFKA_BROKERS:-}" ]; then
  scripts/broker.sh start "$PWD/.mart/kafka" "$KAFKA_PORT"
  started_kafka=1
  export SPIN_VARIABLE_KAFKA_BROKERS="127.0.0.1:$KAFKA_PORT"
fi
cleanup() {
  [ -n "$started_kafka" ] && scripts/broker.sh stop "$PWD/.mart/kafka"
  [ -n "$started_pg" ] && scripts/postgres.sh stop .mart/pg
  true
}
trap cleanup EXIT

# Development signing keys (ES256), made once under .mart/jwt unless given.
if [ -z "${SPIN_VARIABLE_JWT_PRIVATE_KEY:-}" ]; then
  if ! command -v openssl >/dev/null; then
    if [ "$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssl >/dev/null
    else echo "openssl is needed to make development keys: sudo apt-get install -y openssl" >&2; exit 1; fi
  fi
  mkdir -p .mart/jwt
  if [ ! -f .mart/jwt/private.pem ]; then
    openssl ecparam -genkey -name prime256v1 -noout | openssl pkcs8 -topk8 -nocrypt -out .mart/jwt/private.pem
    openssl ec -in .mart/jwt/private.pem -pubout -out .mart/jwt/public.pem 2>/dev/null
  fi
  export SPIN_VARIABLE_JWT_PRIVATE_KEY="$(cat .mart/jwt/private.pem)"
  export SPIN_VARIABLE_JWT_PUBLIC_KEY="$(cat .mart/jwt/public.pem)"
fi
# The fake payment provider for trying the shop locally (the manifest enables
# none, so a deployment that forgets it takes no orders).
export SPIN_VARIABLE_PAYMENT_PROVIDERS=${SPIN_VARIABLE_PAYMENT_PROVIDERS:-fake}
# A local admin for trying the API (see README); override in the environment.
export SPIN_VARIABLE_ADMIN_EMAIL=${SPIN_VARIABLE_ADMIN_EMAIL:-admin@mart.local}
export SPIN_VARIABLE_ADMIN_PASSWORD=${SPIN_VARIABLE_ADMIN_PASSWORD:-admin-password-change-me}

target/debug/mart migrate --database-url "$MART_DATABASE_URL" --migrations migrations
scripts/seed.sh "$MART_DATABASE_URL"

if [ "$runner" = spin ]; then
  # spin up's own HTTP trigger serves the HTTP components; it starts the
  # plugins for [[trigger.kafka]] and [[trigger.timer]] and forwards to each
  # the flags it declared (--runtime-config-file to all three).
  spin up --from spin.toml --runtime-config-file runtime-config.toml --listen "$LISTEN" &
else
  target/debug/mart up --from spin.toml --runtime-config-file runtime-config.toml --listen "$LISTEN" &
fi
host=$!
trap 'kill -TERM $host 2>/dev/null; wait $host 2>/dev/null; cleanup' EXIT INT TERM
wait $host
