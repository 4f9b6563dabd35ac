#!/bin/sh
# Migrate the service databases, then serve the app.
set -eu
mart migrate --database-url "$MART_DATABASE_URL" --migrations /app/migrations
exec mart up --from /app/spin.toml --runtime-config-file /app/runtime-config.toml --listen "$MART_LISTEN"
