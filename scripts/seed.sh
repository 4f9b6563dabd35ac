#!/usr/bin/env bash
# Loads sample data (seeds/<database>/*.sql, idempotent) for `make run` and benchmarks.
set -euo pipefail
cd "$(dirname "$0")/.."
server_url=$1
for dir in seeds/*/; do
  db=$(basename "$dir")
  url="${server_url%/*}/$db"
  for file in "$dir"*.sql; do
    psql -q -v ON_ERROR_STOP=1 "$url" -f "$file" >/dev/null
  done
done
echo "sample data loaded" >&2
