#!/bin/sh
# Runs once, on an empty data volume: the role that owns the databases (it
# migrates them), the databases, one login role per service,
# `mart_<database>`, with its own password, and the outbox relay's role,
# `mart_relay`, with its own. `mart migrate` then lets each service's role
# reach its own database only, and `mart_relay` the outboxes and
# processed-events records only.
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" <<SQL
CREATE ROLE ${MART_DB_USER} LOGIN PASSWORD '${MART_DB_PASSWORD}';
SQL
for db in catalog users inventory carts orders payments notifications; do
  psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" -c "CREATE DATABASE $db OWNER ${MART_DB_USER}"
  password=$(printenv "MART_$(echo "$db" | tr a-z A-Z)_DB_PASSWORD")
  psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" \
    -c "CREATE ROLE mart_$db LOGIN PASSWORD '$password'"
done
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" \
  -c "CREATE ROLE mart_relay LOGIN PASSWORD '${MART_RELAY_DB_PASSWORD}'"
