#!/usr/bin/env bash
# Kafka-protocol broker for `make run` and the tests: tansu (a Kafka broker in
# Rust, from crates.io) with its SQLite storage engine, on loopback only.
# Apache Kafka itself runs in docker compose; this is for machines without it.
#   scripts/broker.sh install          build tansu once into ~/.cache/mart/tansu
#   scripts/broker.sh bin              print the binary's path (installing it first)
#   scripts/broker.sh start DIR PORT   start on 127.0.0.1:PORT, data under DIR
#   scripts/broker.sh stop DIR         stop it
# Only tansu's SQLite engine keeps committed offsets exactly (its memory engine
# loses data on resume, its PostgreSQL engine needs PostgreSQL 16+).
set -euo pipefail

TANSU_VERSION=0.6.0
ROOT=${MART_TANSU_ROOT:-$HOME/.cache/mart/tansu}
BIN=$ROOT/bin/tansu

install() {
  if [ -x "$BIN" ] && "$BIN" --version 2>/dev/null | grep -q "$TANSU_VERSION"; then return; fi
  echo "building tansu $TANSU_VERSION into $ROOT (once; about 8 minutes on 2 cores)" >&2
  CARGO_TARGET_DIR="${MART_TANSU_BUILD:-$HOME/.cache/mart/tansu-build}" \
    cargo install tansu --version "$TANSU_VERSION" --locked --quiet \
      --no-default-features --features libsql --root "$ROOT" >&2
}

wait_port() {
  local port=$1 i
  for i in $(seq 1 200); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
    sleep 0.05
  done
  return 1
}

# A broker started earlier in DIR that is still alive (a `make run` killed
# before it could stop it): reused, so that its groups and data stay.
running_pid() {
  local dir=$1 pid
  [ -f "$dir/tansu.pid" ] || return 1
  pid=$(cat "$dir/tansu.pid")
  kill -0 "$pid" 2>/dev/null || return 1
  # A pid file outlives its process: the number may belong to another one.
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q tansu || return 1
  echo "$pid"
}

start() {
  local dir=$1 port=$2 pid
  install
  mkdir -p "$dir/data"
  if pid=$(running_pid "$dir"); then
    if wait_port "$port"; then
      echo "tansu already running in $dir (pid $pid)" >&2
      return
    fi
    # Alive but not on this port: never two brokers on one data folder.
    stop "$dir"
  fi
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "port 127.0.0.1:$port is in use by another process: choose another (MART_KAFKA_PORT)" >&2
    exit 1
  fi
  # The SQLite path is relative to the working directory. A session of its
  # own (setsid): the terminal's Ctrl-C reaches `make run`'s host only, and
  # run.sh stops the broker after the host has left its groups.
  (cd "$dir" && exec setsid nohup "$BIN" broker \
      --listener-url "tcp://127.0.0.1:$port" \
      --advertised-listener-url "tcp://127.0.0.1:$port" \
      --storage-engine "sqlite://data/tansu.db" >"$dir/tansu.log" 2>&1 </dev/null) &
  pid=$!
  echo $pid >"$dir/tansu.pid"
  if ! wait_port "$port" || ! kill -0 "$pid" 2>/dev/null; then
    echo "tansu did not listen on 127.0.0.1:$port; its log:" >&2
    tail -20 "$dir/tansu.log" >&2
    stop "$dir"
    exit 1
  fi
}

stop() {
  local dir=$1 pid i
  [ -f "$dir/tansu.pid" ] || return 0
  if ! pid=$(running_pid "$dir"); then
    rm -f "$dir/tansu.pid"
    return 0
  fi
  kill "$pid" 2>/dev/null || true
  # tansu can take long to exit on SIGTERM; its SQLite data is safe to kill.
  for i in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$dir/tansu.pid"
}

case "${1:-}" in
  install) install ;;
  bin) install; echo "$BIN" ;;
  start) start "$2" "$3" ;;
  stop) stop "$2" ;;
  *) echo "usage: $0 install|bin|start DIR PORT|stop DIR" >&2; exit 2 ;;
esac
