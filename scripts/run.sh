#!/usr/bin/env bash
# `make run`: the whole app on this machine. Without MART_DATABASE_URL it
# starts a throwaway PostgreSQL cluster under .mart/ (stopped on exit); without
# MART_KAFKA_BROKERS it starts a Kafka-protocol broker (tansu) under .mart/kafka.
set -euo pipefail
cd "$(dirname "$0")/.."

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
if [ -z "${MART_KAFKA_BROKERS:-}" ]; then
  scripts/broker.sh start "$PWD/.mart/kafka" "$KAFKA_PORT"
  started_kafka=1
  export MART_KAFKA_BROKERS="127.0.0.1:$KAFKA_PORT"
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
# A local admin for trying the API (see README); override in the environment.
export SPIN_VARIABLE_ADMIN_EMAIL=${SPIN_VARIABLE_ADMIN_EMAIL:-admin@mart.local}
export SPIN_VARIABLE_ADMIN_PASSWORD=${SPIN_VARIABLE_ADMIN_PASSWORD:-admin-password-change-me}

target/debug/mart migrate --database-url "$MART_DATABASE_URL" --migrations migrations
scripts/seed.sh "$MART_DATABASE_URL"

target/debug/mart up --from spin.toml --runtime-config-file runtime-config.toml --listen "$LISTEN" &
host=$!
trap 'kill -TERM $host 2>/dev/null; wait $host 2>/dev/null; cleanup' EXIT INT TERM
wait $host
