# Mart. `make help` lists the targets.
SHELL := /bin/bash
CARGO ?= cargo
# Every Wasm component: the app's and the host-behaviour probe used by tests.
COMPONENTS := catalog users inventory carts probe unsupported
WASM_TARGET := wasm32-wasip2

.PHONY: help build components host run test bench fmt lint clean

help: ## Show this help
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

build: components host ## Build the host and every component

components: ## Build the Wasm components (wasm32-wasip2)
	@rustup target list --installed 2>/dev/null | grep -qx $(WASM_TARGET) || rustup target add $(WASM_TARGET)
	$(CARGO) build --profile wasm --target $(WASM_TARGET) $(addprefix -p ,$(COMPONENTS))

host: ## Build the `mart` host
	$(CARGO) build -p mart-host

run: build ## Run the whole app on 127.0.0.1:3000 (starts PostgreSQL if needed)
	scripts/run.sh

test: build ## Run every test (unit, integration with PostgreSQL and the host)
	$(CARGO) test --workspace --exclude catalog --exclude users --exclude inventory --exclude carts --exclude probe --exclude unsupported

bench: ## Benchmark the host against a native server (prints a table)
	scripts/bench.sh

fmt: ## Format the code
	$(CARGO) fmt --all

lint: ## rustfmt check and clippy (host and components), warnings are errors
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --exclude catalog --exclude users --exclude inventory --exclude carts --exclude probe --exclude unsupported --all-targets -- -D warnings
	$(CARGO) clippy --target $(WASM_TARGET) $(addprefix -p ,$(COMPONENTS)) -- -D warnings

clean: ## Remove build output and local data
	$(CARGO) clean
	rm -rf .mart
