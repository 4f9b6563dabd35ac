#!/usr/bin/env bash
# `make bench`: the host against a minimal native server, side by side in one
# run on this machine (wrk, server and PostgreSQL share the cores), plus the
# in-process cost of one request. Prints a table; asserts nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${BENCH_DURATION:-10s}
CONNECTIONS=${BENCH_CONNECTIONS:-32}
PG_PORT=${BENCH_PG_PORT:-54339}
HOST_PORT=${BENCH_HOST_PORT:-3300}
NATIVE_PORT=${BENCH_NATIVE_PORT:-3301}
PRODUCT=00000000-0000-4000-8000-000000000001
KAFKA_PORT=${BENCH_KAFKA_PORT:-19192}
EVENTS_HOST_PORT=${BENCH_EVENTS_HOST_PORT:-3302}
APP_PORT=${BENCH_APP_PORT:-3303}
SPIN_PORT=${BENCH_SPIN_PORT:-3304}
NO_REUSE_PORT=${BENCH_NO_REUSE_PORT:-3305}
NO_REUSE_ADMIN_PORT=${BENCH_NO_REUSE_ADMIN_PORT:-3306}

if ! command -v wrk >/dev/null; then
  if [ "$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
  else echo "wrk is missing: sudo apt-get install -y wrk" >&2; exit 1; fi
fi

make -s components broker
cargo build -q --release -p mart-host -p mart-bench

pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  scripts/broker.sh stop "$PWD/.mart/bench-kafka"
  scripts/postgres.sh stop .mart/bench-pg
}
trap cleanup EXIT

scripts/postgres.sh start .mart/bench-pg "$PG_PORT"
server="postgres://mart@127.0.0.1:$PG_PORT/postgres"
target/release/mart migrate --database-url "$server" --migrations migrations >/dev/null 2>&1
scripts/seed.sh "$server" 2>/dev/null

SPIN_VARIABLE_PG_PORT=$PG_PORT target/release/mart up --from tests/fixtures/bench.toml \
  --listen "127.0.0.1:$HOST_PORT" 2>/dev/null &
pids+=($!)
# The same app with every WASIp3 instance used once: what reuse buys the
# catalog (a WASIp3 component since the shop moved to spin-sdk 6).
SPIN_VARIABLE_PG_PORT=$PG_PORT target/release/mart up --from tests/fixtures/bench.toml \
  --listen "127.0.0.1:$NO_REUSE_PORT" --admin-listen "127.0.0.1:$NO_REUSE_ADMIN_PORT" \
  --max-instance-reuse-count 1 2>/dev/null &
pids+=($!)
target/release/mart-native-ref --listen "127.0.0.1:$NATIVE_PORT" \
  --database-url "postgres://mart@127.0.0.1:$PG_PORT/catalog" 2>/dev/null &
pids+=($!)
wait_for() { for _ in $(seq 300); do curl -sf "$1" >/dev/null 2>&1 && return; sleep 0.1; done; echo "no answer from $1" >&2; exit 1; }
wait_for "127.0.0.1:$HOST_PORT/.well-known/spin/health"
wait_for "127.0.0.1:$NO_REUSE_PORT/.well-known/spin/health"
wait_for "127.0.0.1:$NATIVE_PORT/noop"
curl -sf "127.0.0.1:$HOST_PORT/products/$PRODUCT" >/dev/null
curl -sf "127.0.0.1:$NATIVE_PORT/products/$PRODUCT" >/dev/null

# wrk's summary: "rps p50_ms p99_ms"
measure() {
  local out rps p50 p99
  wrk -t2 -c"$CONNECTIONS" -d2s "$1" >/dev/null 2>&1 # warm-up
  out=$(wrk -t2 -c"$CONNECTIONS" -d"$DURATION" --latency "$1")
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '$1=="50%" {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  if grep -q "Non-2xx" <<<"$out"; then echo "non-2xx responses from $1" >&2; fi
  echo "$rps $(to_ms "$p50") $(to_ms "$p99")"
}
to_ms() { awk -v v="$1" 'BEGIN { n=v+0; if (v ~ /us$/) n/=1000; else if (v ~ /ms$/) n=n; else if (v ~ /s$/) n*=1000; printf "%.2f", n }'; }

# Where one in-process request's instructions go, stage by stage
# (mart-breakdown): callgrind counts instructions, which repeat from run to
# run where times on these machines do not. Kernel time (page faults,
# system calls) is not in the count; the req/s and µs above have it.
profile() {
  local path=$1 title=$2 out=.mart/bench-callgrind.out requests=2000
  if ! command -v valgrind >/dev/null; then scripts/install-debian-packages.sh valgrind; fi
  # A few pool slots: valgrind cannot reserve the address space of 1,000.
  SPIN_VARIABLE_PG_PORT=$PG_PORT RUST_BACKTRACE=0 valgrind --tool=callgrind --collect-atstart=no \
    '--toggle-collect=mart_overhead::requests*' --callgrind-out-file="$out" \
    target/release/mart-overhead --manifest tests/fixtures/bench.toml --path "$path" \
    --iterations "$requests" --max-instances 4 --cache-dir "$PWD/.mart/bench-cache" >/dev/null 2>&1
  echo "Where the instructions of one in-process request go: $title (callgrind, $((requests + 1000)) requests)"
  echo
  callgrind_annotate --threshold=100 --inclusive=no --tree=none --auto=no "$out" 2>/dev/null \
    | target/release/mart-breakdown --requests $((requests + 1000))
  echo
}

# The event formats side by side, in process (no servers involved).
echo
target/release/mart-event-formats
echo

# BENCH_ONLY=events skips the HTTP part (for working on the saga).
if [ "${BENCH_ONLY:-}" != events ]; then
native_noop=$(measure "http://127.0.0.1:$NATIVE_PORT/noop")
host_noop=$(measure "http://127.0.0.1:$HOST_PORT/probe/noop")
host_p3_noop=$(measure "http://127.0.0.1:$HOST_PORT/p3/hello")
native_db=$(measure "http://127.0.0.1:$NATIVE_PORT/products/$PRODUCT")
host_db=$(measure "http://127.0.0.1:$HOST_PORT/products/$PRODUCT")
host_db_no_reuse=$(measure "http://127.0.0.1:$NO_REUSE_PORT/products/$PRODUCT")
# Fermyon Spin beside them when it is installed: the same manifest, the same
# database, in the same run.
spin_noop="" spin_db="" spin_p3_noop=""
if command -v spin >/dev/null; then
  SPIN_VARIABLE_PG_PORT=$PG_PORT spin up --from tests/fixtures/bench.toml \
    --listen "127.0.0.1:$SPIN_PORT" >/dev/null 2>&1 &
  pids+=($!)
  wait_for "127.0.0.1:$SPIN_PORT/.well-known/spin/health"
  spin_noop=$(measure "http://127.0.0.1:$SPIN_PORT/probe/noop")
  spin_p3_noop=$(measure "http://127.0.0.1:$SPIN_PORT/p3/hello")
  spin_db=$(measure "http://127.0.0.1:$SPIN_PORT/products/$PRODUCT")
fi

row() { read -r rps p50 p99 <<<"$2"; printf "| %-34s | %10.0f | %8s | %8s |\n" "$1" "$rps" "$p50" "$p99"; }
ratio() { awk -v a="$(cut -d' ' -f1 <<<"$1")" -v b="$(cut -d' ' -f1 <<<"$2")" 'BEGIN { printf "%.0f %%", 100*a/b }'; }

echo
echo "wrk -t2 -c$CONNECTIONS -d$DURATION on loopback; wrk, servers and PostgreSQL share $(nproc) cores"
echo
echo "| route                              |      req/s | p50 (ms) | p99 (ms) |"
echo "|------------------------------------|-----------:|---------:|---------:|"
row "native no-op GET"                    "$native_noop"
row "mart host no-op component"           "$host_noop"
row "mart host no-op, WASIp3 with reuse"   "$host_p3_noop"
row "native GET /products/{id}"           "$native_db"
row "mart host GET /products/{id}"        "$host_db"
row "  the same, no reuse (count 1)"        "$host_db_no_reuse"
if [ -n "$spin_noop" ]; then
  row "Fermyon Spin no-op component"      "$spin_noop"
  row "Fermyon Spin no-op, WASIp3"        "$spin_p3_noop"
  row "Fermyon Spin GET /products/{id}"   "$spin_db"
fi
echo
echo "host / native, no-op route: $(ratio "$host_noop" "$native_noop")   (target >= 50 %)"
echo "host / native, no-op, p3:   $(ratio "$host_p3_noop" "$native_noop")   (target >= 50 %, instances reused)"
echo "host / native, DB read:     $(ratio "$host_db" "$native_db")   (target >= 80 %)"
echo "DB read, reuse / no reuse:  $(ratio "$host_db" "$host_db_no_reuse")"
if [ -n "$spin_noop" ]; then
  echo "host / Spin, no-op route:   $(ratio "$host_noop" "$spin_noop")"
  echo "host / Spin, DB read:       $(ratio "$host_db" "$spin_db")"
else
  echo "Fermyon Spin: not on PATH, so not measured beside them"
fi
echo
target/release/mart-overhead --manifest tests/fixtures/bench.toml --path /probe/noop
echo
profile /probe/noop "no-op route"
profile "/products/$PRODUCT" "GET /products/{id}"
fi

# --- events: the Kafka trigger and the checkout saga ---------------------------
rm -rf .mart/bench-kafka
scripts/broker.sh start "$PWD/.mart/bench-kafka" "$KAFKA_PORT"
export MART_KAFKA_BROKERS="127.0.0.1:$KAFKA_PORT"
SPIN_VARIABLE_PG_PORT=$PG_PORT RUST_LOG=warn target/release/mart up --from tests/fixtures/bench-events.toml \
  --listen "127.0.0.1:$EVENTS_HOST_PORT" --admin-listen 127.0.0.1:9391 --no-outbox-relay 2>/dev/null &
pids+=($!)
mkdir -p .mart/bench-jwt
if [ ! -f .mart/bench-jwt/private.pem ]; then
  openssl ecparam -genkey -name prime256v1 -noout | openssl pkcs8 -topk8 -nocrypt -out .mart/bench-jwt/private.pem
  openssl ec -in .mart/bench-jwt/private.pem -pubout -out .mart/bench-jwt/public.pem 2>/dev/null
fi
SPIN_VARIABLE_PG_PORT=$PG_PORT SPIN_VARIABLE_JWT_PRIVATE_KEY="$(cat .mart/bench-jwt/private.pem)" \
  SPIN_VARIABLE_JWT_PUBLIC_KEY="$(cat .mart/bench-jwt/public.pem)" \
  SPIN_VARIABLE_PAYMENT_PROVIDERS=fake SPIN_VARIABLE_ALLOW_FAKE_PAYMENTS=true SPIN_VARIABLE_ADMIN_EMAIL=admin@bench.local SPIN_VARIABLE_ADMIN_PASSWORD=bench-admin-password \
  MART_DATABASE_URL="$server" target/release/mart up --from spin.toml \
  --listen "127.0.0.1:$APP_PORT" --admin-listen 127.0.0.1:9392 2>/dev/null &
app_pid=$!
pids+=($app_pid)
app_launched=$(date +%s%N)
wait_for "127.0.0.1:$APP_PORT/.well-known/spin/health"
app_ready_ms=$(( ($(date +%s%N) - app_launched) / 1000000 ))
wait_for "127.0.0.1:$EVENTS_HOST_PORT/.well-known/spin/health"
BENCH_ADMIN_TOKEN=$(curl -sf "127.0.0.1:$APP_PORT/auth/token" -H 'content-type: application/json' \
  -d '{"email":"admin@bench.local","password":"bench-admin-password"}' | sed -E 's/.*"access_token":"([^"]+)".*/\1/')
export BENCH_ADMIN_TOKEN
sleep 3 # let both consumer groups settle before measuring
target/release/mart-events-bench --brokers "$MART_KAFKA_BROKERS" --trigger-admin http://127.0.0.1:9391 \
  --app "http://127.0.0.1:$APP_PORT" --database-url "$server" --orders "${BENCH_ORDERS:-400}" \
  --app-admin http://127.0.0.1:9392 --host-pid "$app_pid" --postgres-pid "$(head -1 .mart/bench-pg/postmaster.pid)" \
  --broker-pid "$(cat .mart/bench-kafka/tansu.pid)" --idle-secs "${BENCH_IDLE_SECS:-60}"

# Footprint: the whole shop's host (8 components, 5 Kafka handlers, a timer)
# from launch to ready, and its resident memory under 256 connections.
peak=0
wrk -t2 -c256 -d10s "http://127.0.0.1:$APP_PORT/products?limit=5" >/dev/null 2>&1 &
load=$!
while kill -0 "$load" 2>/dev/null; do
  rss=$(awk '/^VmRSS:/ {print int($2 / 1024)}' "/proc/$app_pid/status")
  [ "$rss" -gt "$peak" ] && peak=$rss
  sleep 0.2
done
echo
echo "| footprint of \`mart up\` with spin.toml | value | goal |"
echo "|---|---:|---:|"
echo "| launch → ready (compile cache in ~/.cache/mart/wasmtime) | $app_ready_ms ms | < 1,000 ms, cache warm |"
echo "| resident memory, peak under 256 connections (GET /products) | $peak MiB | ≤ 150 MiB |"
echo
echo "Metrics during the run: curl 127.0.0.1:9392/metrics (kafka lag, handler outcomes, outbox backlog)"
