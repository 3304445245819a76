# The two commands of the README's Quick start are `make run` and `make test`.
CARGO ?= cargo

.PHONY: run run-wasm test functions lint test-deploy bench bench-smoke bench-micro

## Serves the bash example function on http://localhost:8080
run:
	LAMBDA_TASK_ROOT=example/bash $(CARGO) run -p aws-custom-runtime

WASM_GUESTS = -p wasm-echo -p wasm-stdio -p wasm-apigateway -p wasm-cloudevents -p test-guests

RIC_VENV = target/ric-venv

## Builds the functions the integration tests start (examples and test functions), and
## installs the PyPI runtime client (awslambdaric) that host/tests/python_client.rs runs
functions: $(RIC_VENV)/installed
	$(CARGO) build --workspace --bins
	$(CARGO) build --release --target wasm32-wasip1 $(WASM_GUESTS)

$(RIC_VENV)/installed:
	python3 -m venv $(RIC_VENV)
	$(RIC_VENV)/bin/pip install --quiet awslambdaric==4.2.2
	touch $@

## Serves the WASI echo example (guest SDK) on http://localhost:8080
run-wasm:
	$(CARGO) build --release --target wasm32-wasip1 -p wasm-echo
	mkdir -p target/example-wasm-echo
	cp target/wasm32-wasip1/release/wasm-echo.wasm target/example-wasm-echo/bootstrap.wasm
	LAMBDA_TASK_ROOT=target/example-wasm-echo $(CARGO) run -p aws-custom-runtime

## Unit and integration tests, formatting and lints, deployment files and images (what CI
## runs). Clippy shares the target dir; its check build of the dependencies adds a few
## minutes to a fresh CI run.
test: functions
	$(CARGO) test --workspace
	$(MAKE) lint
	$(MAKE) test-deploy

## Formatting, lints and doc warnings of host and guests
lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) clippy --target wasm32-wasip1 $(WASM_GUESTS) -p lambda-wasi -- -D warnings
	RUSTDOCFLAGS=-Dwarnings $(CARGO) doc --no-deps -p aws-custom-runtime -p lambda-wasi

DEPLOY_VENV = target/deploy-venv
# Cargo profile of the static binaries the image test packages (release: what ships).
IMAGE_PROFILE ?= release

## Python tools of the deployment tests (pytest, kubernetes-validate, hadolint), in a venv
$(DEPLOY_VENV)/installed: deploy/test/requirements.txt
	python3 -m venv $(DEPLOY_VENV)
	$(DEPLOY_VENV)/bin/pip install --quiet -r deploy/test/requirements.txt
	touch $@

## Deployment files checked offline; runtime and function images built and run with buildah
test-deploy: $(DEPLOY_VENV)/installed
	PATH="$(CURDIR)/$(DEPLOY_VENV)/bin:$$PATH" PYTHONDONTWRITEBYTECODE=1 \
	IMAGE_PROFILE=$(IMAGE_PROFILE) \
		$(DEPLOY_VENV)/bin/python -m pytest -p no:cacheprovider -rs deploy/test

## Benchmarks (README "Performance"): release builds, then 3 interleaved rounds of every
## scenario against the reference echo server; JSON under bench/results/. About 8 minutes
## after the build. BENCH_ARGS="--rounds 1 --duration 5" for a quicker look.
BENCH_ARGS ?=
bench:
	$(CARGO) build --release -p aws-custom-runtime -p rust-native-echo -p bench
	$(CARGO) build --release --target x86_64-unknown-linux-musl -p aws-custom-runtime
	$(CARGO) build --release --target wasm32-wasip1 -p wasm-echo -p wasm-stdio
	python3 bench/bench.py $(BENCH_ARGS)

## CI: a 2-second run of every scenario at c=1 and c=64 on dev builds (checks the harness,
## not the numbers); fails on any error or missing scenario
bench-smoke:
	$(CARGO) build -p aws-custom-runtime -p rust-native-echo -p bench
	$(CARGO) build --release --target wasm32-wasip1 -p wasm-echo -p wasm-stdio
	python3 bench/bench.py --smoke --profile debug

## Criterion micro-benchmarks: Dispatcher round trip, WASI fresh-instance / loop / stdio cycles
bench-micro:
	$(CARGO) build --release --target wasm32-wasip1 -p wasm-echo -p wasm-stdio -p test-guests
	$(CARGO) bench -p aws-custom-runtime --benches
