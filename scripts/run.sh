#!/usr/bin/env bash
# `make run` (scripts/run.sh mart) and `make spin-up` (scripts/run.sh spin):
# the whole app on this machine, on Mart's host or on Fermyon Spin with Mart's
# trigger plugins. Without MART_DATABASE_URL it starts a throwaway PostgreSQL
# cluster under .mart/pg; without SPIN_VARIABLE_KAFKA_BROKERS it starts a
# Kafka-protocol broker (tansu) under .mart/kafka. Both run in sessions of
# their own, so the terminal's Ctrl-C reaches the host only: on Ctrl-C, on
# SIGTERM or SIGHUP (a closed terminal), on a failed start and when the host
# exits, the host is stopped first (it finishes its work, commits and leaves
# its groups), then the broker and PostgreSQL this run started or found
# running (a run killed outright leaves them running; the next run reuses
# them). Ports: MART_PG_PORT, MART_KAFKA_PORT, MART_LISTEN; state:
# MART_RUN_DIR (default .mart).
set -euo pipefail
cd "$(dirname "$0")/.."
runner=${1:-mart}
RUN_DIR=${MART_RUN_DIR:-.mart}
mkdir -p "$RUN_DIR"
RUN_DIR=$(cd "$RUN_DIR" && pwd)

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
host=""

# Stops the host (SIGTERM, then SIGKILL after 60 s or a second Ctrl-C),
# waits for it, then the broker and PostgreSQL: the host leaves its groups
# and commits its offsets while the broker is still there.
cleanup() {
  local status=$?
  trap - EXIT
  trap 'kill -KILL "$host" 2>/dev/null' INT
  trap '' TERM HUP
  if [ -n "$host" ] && kill -0 "$host" 2>/dev/null; then
    echo "stopping the host (pid $host)" >&2
    stop_pid "$host"
    wait "$host" 2>/dev/null || true
  fi
  rm -f "$RUN_DIR/host.pid"
  if [ -n "$started_kafka" ]; then
    echo "stopping the Kafka broker" >&2
    scripts/broker.sh stop "$RUN_DIR/kafka" || true
  fi
  if [ -n "$started_pg" ]; then
    echo "stopping PostgreSQL" >&2
    scripts/postgres.sh stop "$RUN_DIR/pg" || true
  fi
  exit "$status"
}
stop_pid() {
  local pid=$1 i
  kill -TERM "$pid" 2>/dev/null || return 0
  for i in $(seq 1 600); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
}
# A host of an earlier run whose script was killed may still hold the ports.
if [ -f "$RUN_DIR/host.pid" ]; then
  old=$(cat "$RUN_DIR/host.pid")
  if grep -qa -e mart -e spin "/proc/$old/cmdline" 2>/dev/null; then
    echo "stopping the host of an earlier run (pid $old)" >&2
    stop_pid "$old"
  fi
  rm -f "$RUN_DIR/host.pid"
fi

# Every exit path, including a `set -e` failure before the host runs.
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

if [ -z "${MART_DATABASE_URL:-}" ]; then
  started_pg=1
  scripts/postgres.sh start "$RUN_DIR/pg" "$PG_PORT"
  export MART_DATABASE_URL="postgres://mart@127.0.0.1:$PG_PORT/postgres"
  export SPIN_VARIABLE_PG_PORT=$PG_PORT
fi
if [ -z "${SPIN_VARIABLE_KAFKA_BROKERS:-}" ]; then
  started_kafka=1
  scripts/broker.sh start "$RUN_DIR/kafka" "$KAFKA_PORT"
  export SPIN_VARIABLE_KAFKA_BROKERS="127.0.0.1:$KAFKA_PORT"
fi

# A stable identity in the consumer groups (Kafka static membership) unless
# one is given: a host killed uncleanly and started again takes its
# partitions back at once, instead of sharing them with its dead self until
# the broker expires it (minutes on tansu). Made once per machine and state
# folder; the Spin plugins inherit it from `spin up`'s environment.
if [ -z "${MART_KAFKA_INSTANCE_ID:-}" ]; then
  if [ ! -s "$RUN_DIR/instance-id" ]; then
    echo "mart-$(uname -n)-$(printf '%s' "$RUN_DIR" | sha256sum | cut -c1-12)" >"$RUN_DIR/instance-id"
  fi
  MART_KAFKA_INSTANCE_ID=$(cat "$RUN_DIR/instance-id")
fi
export MART_KAFKA_INSTANCE_ID

# Development signing keys (ES256), made once under .mart/jwt unless given.
if [ -z "${SPIN_VARIABLE_JWT_PRIVATE_KEY:-}" ]; then
  if ! command -v openssl >/dev/null; then
    if [ "$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssl >/dev/null
    else echo "openssl is needed to make development keys: sudo apt-get install -y openssl" >&2; exit 1; fi
  fi
  mkdir -p "$RUN_DIR/jwt"
  if [ ! -f "$RUN_DIR/jwt/private.pem" ]; then
    openssl ecparam -genkey -name prime256v1 -noout | openssl pkcs8 -topk8 -nocrypt -out "$RUN_DIR/jwt/private.pem"
    openssl ec -in "$RUN_DIR/jwt/private.pem" -pubout -out "$RUN_DIR/jwt/public.pem" 2>/dev/null
  fi
  export SPIN_VARIABLE_JWT_PRIVATE_KEY="$(cat "$RUN_DIR/jwt/private.pem")"
  export SPIN_VARIABLE_JWT_PUBLIC_KEY="$(cat "$RUN_DIR/jwt/public.pem")"
fi
# The fake payment provider for trying the shop locally (the manifest enables
# none, so a deployment that forgets it takes no orders).
export SPIN_VARIABLE_PAYMENT_PROVIDERS=${SPIN_VARIABLE_PAYMENT_PROVIDERS:-fake}
# Calls between components that the host cannot chain (Spin 4.0.x from
# WASIp3 components) go to this run's own listener.
export SPIN_VARIABLE_SERVICES_ORIGIN=${SPIN_VARIABLE_SERVICES_ORIGIN:-http://$LISTEN}
# ...which runs only under the development switch (never set it in a deployment).
export SPIN_VARIABLE_ALLOW_FAKE_PAYMENTS=${SPIN_VARIABLE_ALLOW_FAKE_PAYMENTS:-true}
# A local admin for trying the API (see README); override in the environment.
# Its password is made once per state folder, at random: a fixed one would
# be a known admin password wherever this script's defaults were copied
# (and the users service refuses placeholders).
export SPIN_VARIABLE_ADMIN_EMAIL=${SPIN_VARIABLE_ADMIN_EMAIL:-admin@mart.local}
if [ -z "${SPIN_VARIABLE_ADMIN_PASSWORD:-}" ]; then
  if [ ! -s "$RUN_DIR/admin-password" ]; then
    (umask 077; head -c 18 /dev/urandom | base64 >"$RUN_DIR/admin-password")
  fi
  SPIN_VARIABLE_ADMIN_PASSWORD=$(cat "$RUN_DIR/admin-password")
  echo "admin: $SPIN_VARIABLE_ADMIN_EMAIL, password in $RUN_DIR/admin-password"
fi
export SPIN_VARIABLE_ADMIN_PASSWORD

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
echo "$host" >"$RUN_DIR/host.pid"
# The host's exit status is the run's; the EXIT trap then stops the rest.
status=0
wait "$host" || status=$?
host=""
exit "$status"
