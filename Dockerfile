# The runtime image: one static (musl) binary on an empty base, run as an unprivileged user.
# A WASI function needs nothing more; a native bootstrap that needs its own runtime (bash,
# curl, glibc...) gets a function image FROM a base of its choice: deploy/Dockerfile.function.
#
#   docker build -t aws-custom-runtime .
#
# To package a binary built elsewhere instead of compiling here (as make test-deploy does:
# `cargo build --release --target x86_64-unknown-linux-musl -p aws-custom-runtime`, which needs
# Debian's musl-tools), replace the `build` stage by the folder that holds it (BuildKit or
# buildah):
#
#   docker buildx build --build-context build=target/x86_64-unknown-linux-musl/release .
#
# Lambda extensions: a layer folder holding extensions/ (as a layer's zip does) given as the
# build context `layer` ends up in /opt/extensions, where the host finds them:
#
#   docker buildx build --build-context layer=path/to/layer .

ARG RUST_IMAGE=docker.io/library/rust:1.95-alpine

FROM ${RUST_IMAGE} AS build
WORKDIR /src
COPY . .
# On Alpine the host target is musl and Rust links it statically: the binary runs on scratch.
# Stripped of symbols: a fifth smaller; panics still name the file and line, backtraces don't.
RUN cargo build --release --locked -p aws-custom-runtime \
 && strip -o /aws-custom-runtime target/release/aws-custom-runtime

# The default layer: no extensions (WORKDIR makes the empty folder).
FROM scratch AS layer
WORKDIR /extensions

FROM scratch
COPY --from=build /aws-custom-runtime /opt/aws-custom-runtime
COPY --from=layer /extensions /opt/extensions
# The task root is where a function image copies the function (bootstrap or bootstrap.wasm).
# The precompiled-module cache is off: a container's file system dies with the container.
# Function images precompile bootstrap.wasm at build time instead (deploy/Dockerfile.function
# runs `aws-custom-runtime compile`), so a new pod loads bootstrap.cwasm without compiling.
ENV LAMBDA_TASK_ROOT=/var/task \
    WASM_CACHE_DIR=off \
    PORT=8080
WORKDIR /var/task
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/opt/aws-custom-runtime"]
