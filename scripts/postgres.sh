#!/usr/bin/env bash
# Throwaway PostgreSQL cluster for local runs and benchmarks.
#   scripts/postgres.sh start DIR PORT   initdb (once) and start on 127.0.0.1:PORT
#   scripts/postgres.sh stop DIR         stop it
#   scripts/postgres.sh bindir           print the folder with initdb/pg_ctl
# The superuser is `mart`, trusted on loopback only. PostgreSQL refuses to run
# as root, so under root the server runs as the `postgres` system user.
set -euo pipefail

find_bindir() {
  if [ -n "${PG_BIN:-}" ] && [ -x "$PG_BIN/initdb" ]; then echo "$PG_BIN"; return; fi
  local d
  for d in /usr/lib/postgresql/*/bin; do
    if [ -x "$d/initdb" ]; then echo "$d"; return; fi
  done
  if command -v initdb >/dev/null 2>&1; then dirname "$(command -v initdb)"; return; fi
  return 1
}

ensure_installed() {
  if find_bindir >/dev/null; then return; fi
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "PostgreSQL not found: installing Debian's postgresql package" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  else
    echo "PostgreSQL server binaries not found. Install them with:" >&2
    echo "  sudo apt-get install -y postgresql" >&2
    exit 1
  fi
}

as_db_user() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

start() {
  local dir=$1 port=$2 bin
  ensure_installed
  bin=$(find_bindir)
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  [ "$(id -u)" = 0 ] && chown postgres:postgres "$dir"
  if [ ! -f "$dir/PG_VERSION" ]; then
    as_db_user "$bin/initdb" -D "$dir" -U mart --auth=trust --no-sync -E UTF8 >/dev/null
  fi
  if as_db_user "$bin/pg_ctl" -D "$dir" status >/dev/null 2>&1; then
    echo "PostgreSQL already running in $dir" >&2
    return
  fi
  # pg_stat_statements (in Debian's package) counts the statements the
  # shop runs: make bench reports them per order.
  local preload=""
  [ -f "$bin/../lib/pg_stat_statements.so" ] && preload="-c shared_preload_libraries=pg_stat_statements"
  # In a session of its own (setsid): the terminal's Ctrl-C reaches `make
  # run`'s host only, and run.sh stops PostgreSQL after the host.
  as_db_user setsid -w "$bin/pg_ctl" -D "$dir" -l "$dir/server.log" -w -t 30 start \
    -o "-p $port -c listen_addresses=127.0.0.1 -k $dir -c max_connections=200 -c fsync=off $preload" >/dev/null
  echo "PostgreSQL on 127.0.0.1:$port (data in $dir)" >&2
}

stop() {
  local dir=$1 bin
  bin=$(find_bindir) || return 0
  [ -f "$dir/postmaster.pid" ] || return 0
  as_db_user "$bin/pg_ctl" -D "$dir" -m fast -w stop >/dev/null 2>&1 || true
}

case "${1:-}" in
  start) start "$2" "$3" ;;
  stop) stop "$2" ;;
  bindir) ensure_installed; find_bindir ;;
  *) echo "usage: $0 start DIR PORT | stop DIR | bindir" >&2; exit 2 ;;
esac
