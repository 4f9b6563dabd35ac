# syntax=docker/dockerfile:1
# Mart host image: the `mart` binary, the app's Wasm components, spin.toml,
# runtime-config.toml, migrations, the API document and the web pages. Built
# with the same make targets CI uses.

FROM rust:1.95-bookworm AS build
WORKDIR /src
# npm vendors the docs page's UI (`make web`); nothing is fetched at run time.
RUN rustup target add wasm32-wasip2 \
 && apt-get update \
 && apt-get install -y --no-install-recommends nodejs npm \
 && rm -rf /var/lib/apt/lists/*
COPY . .
RUN make components-app web \
 && cargo build --release --locked -p mart-host

FROM debian:bookworm-slim AS runtime
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --create-home --uid 10001 mart
WORKDIR /app
COPY --from=build /src/target/release/mart /usr/local/bin/mart
COPY --from=build /src/target/wasm32-wasip2/wasm/*.wasm target/wasm32-wasip2/wasm/
COPY spin.toml runtime-config.toml ./
COPY migrations migrations
COPY openapi openapi
COPY --from=build /src/web/docs web/docs
COPY web/dashboard web/dashboard
COPY web/shop web/shop
COPY docker/entrypoint.sh /usr/local/bin/mart-entrypoint
USER mart
ENV MART_LISTEN=0.0.0.0:3000 \
    MART_LOG_FORMAT=json \
    MART_CACHE_DIR=/home/mart/.cache/mart/wasmtime
EXPOSE 3000
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=5 \
  CMD curl -fsS http://127.0.0.1:3000/.well-known/spin/health || exit 1
ENTRYPOINT ["mart-entrypoint"]
