# The two commands of the README's Quick start are `make run` and `make test`.
CARGO ?= cargo

.PHONY: run test functions lint

## Serves the bash example function on http://localhost:8080
run:
	LAMBDA_TASK_ROOT=example/bash $(CARGO) run -p aws-custom-runtime

## Builds the functions the integration tests start (examples and test functions)
functions:
	$(CARGO) build --workspace --bins

## Unit and integration tests, formatting and lints
test: functions
	$(CARGO) test --workspace
	$(MAKE) lint

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
