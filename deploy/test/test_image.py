"""The runtime image builds from the repository's Dockerfile, and function images built from
it with deploy/Dockerfile.function (a WASI function, and a static native bootstrap) serve
requests when run, as user 65532, and exit 0 on SIGTERM.

No Docker engine and no registry here: buildah builds daemonless (vfs storage, chroot
isolation) in a private storage folder, and the Dockerfile's `build` stage is replaced by the
static musl binary built on this machine (`--build-context build=...`), so nothing is pulled.

Environment: RUNTIME_BINARY, a static binary to package instead of building one;
MUSL_BINARIES, a folder with the static `aws-custom-runtime` and `bootstrap` (rust-native-echo)
already built, used instead of building either (CI builds the whole workspace for musl once);
IMAGE_PROFILE, the cargo profile of the musl builds (release, as the Dockerfile, by default).
"""

import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BUILDAH = shutil.which("buildah")
MUSL = "x86_64-unknown-linux-musl"
PROFILE = os.environ.get("IMAGE_PROFILE", "release")
PREBUILT = os.environ.get("MUSL_BINARIES")

pytestmark = pytest.mark.skipif(
    BUILDAH is None,
    reason="buildah is not installed (apt-get install buildah): the runtime and function "
    "images were NOT built or run",
)


def cargo_build(package, target, profile=PROFILE):
    subprocess.run(["cargo", "build", "--locked", "--profile", profile, "--target", target,
                    "-p", package], cwd=ROOT, check=True)
    meta = subprocess.run(["cargo", "metadata", "--format-version", "1", "--no-deps"],
                          cwd=ROOT, check=True, capture_output=True, text=True)
    return Path(json.loads(meta.stdout)["target_directory"]) / target / (
        "debug" if profile == "dev" else profile)


def musl_binary(package, name):
    """The static binary `name` of `package`: from MUSL_BINARIES if given, else built."""
    if PREBUILT:
        binary = Path(PREBUILT).resolve() / name
        assert binary.exists(), f"MUSL_BINARIES={PREBUILT} has no {name}"
        return binary
    return cargo_build(package, MUSL) / name


def is_static(elf):
    """No PT_INTERP program header: the kernel runs it without a dynamic loader (scratch)."""
    data = elf.read_bytes()
    assert data[:4] == b"\x7fELF" and data[4] == 2, f"{elf} is not a 64-bit ELF"
    (phoff,) = struct.unpack_from("<Q", data, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    types = [struct.unpack_from("<I", data, phoff + i * phentsize)[0] for i in range(phnum)]
    return 3 not in types


# What each function folder holds, and a request with the reply it must get.
FUNCTIONS = {
    "wasm-echo": {
        "files": lambda: {"bootstrap.wasm": cargo_build("wasm-echo", "wasm32-wasip1", "release")
                          / "wasm-echo.wasm"},
        "request": b'{"name":"buildah"}',
        "check": lambda reply: json.loads(reply)["message"] == "Hello, buildah!",
        # Written by `aws-custom-runtime compile` in the image build; loaded at start.
        "precompiled": ["bootstrap.cwasm", "bootstrap.cwasm.integrity"],
    },
    "rust-native-echo": {
        "files": lambda: {"bootstrap": musl_binary("rust-native-echo", "bootstrap")},
        "request": b'{"native":true}',
        "check": lambda reply: json.loads(reply) == {"native": True},
    },
}


class Buildah:
    """buildah on a private storage folder, so tests neither see nor leave other images."""

    def __init__(self, folder):
        self.base = [BUILDAH, "--root", str(folder / "root"), "--runroot", str(folder / "run"),
                     "--storage-driver", "vfs"]

    def __call__(self, *args):
        out = subprocess.run([*self.base, *args], check=False, capture_output=True, text=True)
        assert out.returncode == 0, f"buildah {' '.join(args)}:\n{out.stdout}\n{out.stderr}"
        return out.stdout.strip()

    def popen(self, *args):
        return subprocess.Popen([*self.base, *args], stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)

    def config(self, image):
        return json.loads(self("inspect", "--type", "image", image))["OCIv1"]["config"]

    def files(self, image):
        """Path -> stat of everything in the image's file system."""
        container = self("from", "--pull-never", image)
        try:
            rootfs = Path(self("mount", container))
            return {str(p.relative_to(rootfs)): p.lstat() for p in rootfs.rglob("*")}
        finally:
            self("rm", container)


@pytest.fixture(scope="module")
def buildah(tmp_path_factory):
    folder = tmp_path_factory.mktemp("buildah")
    b = Buildah(folder)
    yield b
    subprocess.run([*b.base, "rm", "--all"], check=False, capture_output=True)
    subprocess.run([*b.base, "rmi", "--all", "--force"], check=False, capture_output=True)
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def runtime_image(buildah, tmp_path_factory):
    binary = Path(os.environ.get("RUNTIME_BINARY") or
                  musl_binary("aws-custom-runtime", "aws-custom-runtime"))
    assert is_static(binary), f"{binary} is dynamically linked: it cannot run on scratch"
    stage = tmp_path_factory.mktemp("build-stage")
    # Stripped as the Dockerfile's build stage does.
    subprocess.run(["strip", "-o", stage / "aws-custom-runtime", binary], check=True)
    image = "localhost/aws-custom-runtime:test"
    started = time.monotonic()
    buildah("build", "--isolation", "chroot", "--build-context", f"build={stage}",
            "-f", str(ROOT / "Dockerfile"), "-t", image, str(ROOT))
    print(f"\nruntime image built in {time.monotonic() - started:.1f} s; "
          f"size {buildah('images', '--format', '{{.Size}}', image)}")
    return image


@pytest.fixture(scope="module", params=sorted(FUNCTIONS))
def function(request, buildah, runtime_image, tmp_path_factory):
    name, spec = request.param, FUNCTIONS[request.param]
    folder = tmp_path_factory.mktemp(name)
    files = spec["files"]()
    for file, source in files.items():
        shutil.copy2(source, folder / file)
    image = f"localhost/{name}:test"
    buildah("build", "--isolation", "chroot", "--pull-never",
            "-f", str(ROOT / "deploy" / "Dockerfile.function"),
            "--build-arg", f"RUNTIME_IMAGE={runtime_image}", "-t", image, str(folder))
    print(f"\n{name} image size {buildah('images', '--format', '{{.Size}}', image)}")
    return dict(spec, image=image, files=sorted(files))


def test_runtime_image_is_the_static_binary_alone_run_as_non_root(buildah, runtime_image):
    config = buildah.config(runtime_image)
    assert config["Entrypoint"] == ["/opt/aws-custom-runtime"]
    assert config["User"] == "65532:65532"
    env = dict(e.split("=", 1) for e in config["Env"])
    assert env["LAMBDA_TASK_ROOT"] == "/var/task" and env["WASM_CACHE_DIR"] == "off"
    assert sorted(buildah.files(runtime_image)) == ["opt", "opt/aws-custom-runtime",
                                                    "opt/extensions", "var", "var/task"]


def test_function_image_is_the_runtime_and_the_function_folder(buildah, function):
    config = buildah.config(function["image"])
    assert config["Entrypoint"] == ["/opt/aws-custom-runtime"]
    assert config["User"] == "65532:65532"
    assert config["WorkingDir"] == "/var/task"
    files = buildah.files(function["image"])
    expected = {"opt/aws-custom-runtime", "opt/extensions", "var/task",
                *(f"var/task/{f}" for f in function["files"] + function.get("precompiled", []))}
    assert set(files) - {"opt", "var"} == expected
    assert all(files[f].st_mode & 0o004 for f in expected), "a file user 65532 cannot read"
    # User 65532 can write nowhere, so the runtime works on a read-only root file system
    # (the Knative Services set readOnlyRootFilesystem) as it did in the test below.
    assert all(st.st_uid == 0 and not st.st_mode & 0o022 for st in files.values())


def test_a_layer_folder_s_extensions_land_in_opt_extensions(buildah, runtime_image,
                                                           tmp_path_factory):
    function = tmp_path_factory.mktemp("layered-function")
    (function / "bootstrap.wasm").write_bytes(b"\0asm\1\0\0\0")
    layer = tmp_path_factory.mktemp("layer")
    (layer / "extensions").mkdir()
    extension = layer / "extensions" / "my-extension"
    extension.write_text("#!/bin/sh\nexit 0\n")
    extension.chmod(0o755)
    image = "localhost/layered:test"
    buildah("build", "--isolation", "chroot", "--pull-never",
            "-f", str(ROOT / "deploy" / "Dockerfile.function"),
            "--build-context", f"layer={layer}",
            "--build-arg", f"RUNTIME_IMAGE={runtime_image}", "-t", image, str(function))
    files = buildah.files(image)
    assert "opt/extensions/my-extension" in files
    assert files["opt/extensions/my-extension"].st_mode & 0o111, "still executable"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port, process, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, f"the container exited:\n{process.stdout.read()}"
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise AssertionError(f"port {port} did not open in {timeout} s")


def post(port, body, headers=None):
    request = urllib.request.Request(f"http://127.0.0.1:{port}/", data=body,
                                     headers=headers or {}, method="POST")
    with urllib.request.urlopen(request, timeout=10) as reply:
        return reply.status, reply.read()


def runtime_processes():
    """pid -> real uid of every running /opt/aws-custom-runtime, from /proc."""
    found = {}
    for proc in Path("/proc").iterdir():
        try:
            if (proc / "cmdline").read_bytes().split(b"\0")[0] == b"/opt/aws-custom-runtime":
                uid = next(line for line in (proc / "status").read_text().splitlines()
                           if line.startswith("Uid:"))
                found[int(proc.name)] = int(uid.split()[1])
        except (OSError, StopIteration, ValueError):
            pass
    return found


def test_function_image_serves_requests_as_non_root_and_stops_on_sigterm(buildah, function):
    config = buildah.config(function["image"])
    container = buildah("from", "--pull-never", function["image"])
    port = free_port()
    before = set(runtime_processes())
    # As a container runtime would: the image's entry point, with PORT set (Knative sets it).
    run = buildah.popen("run", "--isolation", "chroot", "--env", f"PORT={port}",
                        "--env", "METRICS_PROMETHEUS_PORT=off", container,
                        "--", *config["Entrypoint"])
    try:
        wait_for_port(port, run)
        status, reply = post(port, function["request"], {"Content-Type": "application/json"})
        assert status == 200 and function["check"](reply), reply
        # What kubelet's liveness probe sends: answered by the runtime, no invocation.
        assert post(port, b"", {"User-Agent": "kube-probe/1.32"})[0] == 200
        ours = {pid: uid for pid, uid in runtime_processes().items() if pid not in before}
        assert list(ours.values()) == [65532], f"not one runtime run as user 65532: {ours}"
        # buildah kills its child on SIGTERM; a kubelet signals the container's process itself.
        os.kill(next(iter(ours)), signal.SIGTERM)
        assert run.wait(timeout=30) == 0, "the runtime did not exit 0 on SIGTERM"
    finally:
        if run.poll() is None:
            run.kill()
        log = run.stdout.read()
        print(log)
        buildah("rm", container)
    if function.get("precompiled"):
        # The image's artifact was loaded: the pod did not compile bootstrap.wasm.
        assert "loaded precompiled artifact /var/task/bootstrap.cwasm" in log, log
        assert "compilation skipped" in log and "compiled bootstrap.wasm in" not in log, log
