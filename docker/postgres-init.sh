#!/bin/sh
# Runs once, on an empty data volume: the app role and its databases.
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" <<SQL
CREATE ROLE ${MART_DB_USER} LOGIN PASSWORD '${MART_DB_PASSWORD}';
SQL
for db in catalog users inventory carts orders payments notifications; do
  psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" -c "CREATE DATABASE $db OWNER ${MART_DB_USER}"
done
