# The two commands of the README's Quick start are `make run` and `make test`.
CARGO ?= cargo

.PHONY: run run-wasm test functions lint

## Serves the bash example function on http://localhost:8080
run:
	LAMBDA_TASK_ROOT=example/bash $(CARGO) run -p aws-custom-runtime

WASM_GUESTS = -p wasm-echo -p wasm-stdio -p wasm-apigateway -p wasm-cloudevents -p test-guests

## Builds the functions the integration tests start (examples and test functions)
functions:
	$(CARGO) build --workspace --bins
	$(CARGO) build --release --target wasm32-wasip1 $(WASM_GUESTS)

## Serves the WASI echo example (guest SDK) on http://localhost:8080
run-wasm:
	$(CARGO) build --release --target wasm32-wasip1 -p wasm-echo
	mkdir -p target/example-wasm-echo
	cp target/wasm32-wasip1/release/wasm-echo.wasm target/example-wasm-echo/bootstrap.wasm
	LAMBDA_TASK_ROOT=target/example-wasm-echo $(CARGO) run -p aws-custom-runtime

## Unit and integration tests, formatting and lints
test: functions
	$(CARGO) test --workspace
	$(MAKE) lint

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) clippy --target wasm32-wasip1 $(WASM_GUESTS) -p lambda-wasi -- -D warnings
