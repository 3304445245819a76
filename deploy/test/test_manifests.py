"""Offline checks of every deployment file: the YAML parses; core Kubernetes objects, and the
pod-shaped parts of Knative and Tekton objects, validate against the Kubernetes schema; the
Knative and Tekton objects obey their webhooks' rules (rules.py); their values agree with how
the runtime behaves; hadolint passes on the Dockerfiles."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import rules
import yaml

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = [ROOT / "runtime.yaml", *sorted((ROOT / "deploy").rglob("*.yaml"))]
DOCKERFILES = [ROOT / "Dockerfile", ROOT / "deploy" / "Dockerfile.function"]
# The oldest Kubernetes that current Knative and Tekton releases support, and the newest
# schema kubernetes-validate ships.
K8S_VERSIONS = ["1.32", "1.37"]
CRD_GROUPS = ("serving.knative.dev/", "tekton.dev/")


def load(path):
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def rel(path):
    return str(path.relative_to(ROOT))


def objects(kind):
    return [(rel(p), d) for p in MANIFESTS for d in load(p) if d.get("kind") == kind]


def by_name(kind):
    return {d["metadata"]["name"]: d for _, d in objects(kind)}


def env_of(container):
    return {e["name"]: e.get("value") for e in container.get("env", [])}


def seconds(go_duration):
    """FUNCTION_TTL as the runtime parses it: Go durations, a bare number is seconds."""
    if re.fullmatch(r"\d+", go_duration):
        return int(go_duration)
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", go_duration)
    assert "".join(n + u for n, u in parts) == go_duration, f"bad duration {go_duration!r}"
    return sum(float(n) * units[u] for n, u in parts)


def mebibytes(quantity):
    units = {"Ki": 1 / 1024, "Mi": 1, "Gi": 1024, "KiB": 1 / 1024, "MiB": 1, "GiB": 1024,
             "M": 1e6 / 2**20, "MB": 1e6 / 2**20, "G": 1e9 / 2**20, "GB": 1e9 / 2**20}
    number, unit = re.fullmatch(r"(\d+(?:\.\d+)?)([A-Za-z]*)", quantity).groups()
    return float(number) * (units[unit] if unit else 1)


def test_every_manifest_is_found():
    names = {rel(p) for p in MANIFESTS}
    assert {"runtime.yaml", "deploy/knative/wasm-echo.yaml", "deploy/knative/bash-echo.yaml",
            "deploy/tekton/pipeline.yaml"} <= names


@pytest.mark.parametrize("path", MANIFESTS, ids=rel)
def test_manifest_parses_into_named_objects(path):
    docs = load(path)
    assert docs, "no object"
    for d in docs:
        assert d.get("apiVersion") and d.get("kind"), d
        meta = d.get("metadata", {})
        assert meta.get("name") or meta.get("generateName"), d


def every_object():
    return [pytest.param(d, id=f"{rel(p)}:{d['kind']}") for p in MANIFESTS for d in load(p)]


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("obj", every_object())
def test_object_validates(obj, version):
    """Core objects against the Kubernetes schema; Knative and Tekton objects against their
    webhooks' rules, their pod-shaped parts against the Kubernetes schema."""
    tasks, pipelines = by_name("Task"), by_name("Pipeline")
    checks = {
        ("serving.knative.dev/v1", "Service"): lambda: rules.knative_service(obj, version),
        ("tekton.dev/v1", "Task"): lambda: rules.tekton_task(obj, version),
        ("tekton.dev/v1", "Pipeline"): lambda: rules.tekton_pipeline(obj, tasks, version),
        ("tekton.dev/v1", "PipelineRun"):
            lambda: rules.tekton_pipeline_run(obj, pipelines, version),
    }
    key = (obj["apiVersion"], obj["kind"])
    if obj["apiVersion"].startswith(CRD_GROUPS):
        assert key in checks, "no offline check for this custom resource (or an old API version)"
    assert (checks[key]() if key in checks else rules.kubernetes_schema(obj, version)) == []


@pytest.mark.parametrize("svc", [pytest.param(d, id=w) for w, d in objects("Service")])
def test_knative_service_agrees_with_the_runtime(svc):
    spec = svc["spec"]["template"]["spec"]
    (c,) = spec["containers"]
    env = env_of(c)
    invokers = int(env.get("INVOKER_COUNT", "4"))
    # One invocation per instance at a time: more would wait in the runtime, unseen by the
    # autoscaler; fewer would leave instances idle.
    assert spec["containerConcurrency"] == invokers
    # The runtime's own 504 comes at FUNCTION_TTL; stopping the bootstraps takes up to 3 s
    # more; Knative's timeout is also the pod's grace period for the SIGTERM drain.
    assert spec["timeoutSeconds"] >= seconds(env.get("FUNCTION_TTL", "10s")) + 3
    port = c["ports"][0]["containerPort"]
    ready = c["readinessProbe"]
    # The port opens only when a bootstrap polls: a TCP or HTTP probe on it tells the truth.
    assert (ready.get("tcpSocket") or ready.get("httpGet"))["port"] == port
    live = c["livenessProbe"]
    assert "httpGet" in live and live["httpGet"]["port"] == port
    limits, requests = c["resources"]["limits"], c["resources"]["requests"]
    assert {"cpu", "memory"} <= set(limits) and {"cpu", "memory"} <= set(requests)
    assert mebibytes(requests["memory"]) <= mebibytes(limits["memory"])
    if "WASM_MEMORY_LIMIT" in env:
        linear = invokers * mebibytes(env["WASM_MEMORY_LIMIT"])
        assert mebibytes(limits["memory"]) > linear, "instances' memory exceeds the pod's"
    if "QUEUE_SIZE" in env:
        assert int(env["QUEUE_SIZE"]) >= invokers
    assert c["securityContext"]["runAsNonRoot"] is True
    assert not c["image"].endswith(":latest") and ":" in c["image"].rsplit("/", 1)[-1]


def test_runtime_task_takes_the_runtime_pinned_by_a_param():
    task = by_name("Task")["aws-custom-runtime-function"]
    params = {p["name"]: p for p in task["spec"]["params"]}
    assert {"IMAGE", "DIRECTORY", "HANDLER", "RUNTIME_IMAGE", "BASE_IMAGE"} <= set(params)
    # The user names the runtime; nothing is fetched as "latest" at build time.
    assert "default" not in params["RUNTIME_IMAGE"]
    defaults = [str(p.get("default", "")) for p in params.values()]
    assert not [d for d in defaults if d.endswith(":latest") or "/latest/" in d]
    kaniko = params["KANIKO_IMAGE"]["default"]
    assert re.search(r":v\d+\.\d+\.\d+-debug$", kaniko), "kaniko pinned to a release"
    assert params["BASE_IMAGE"]["default"] == "scratch"


def test_runtime_task_writes_deploy_dockerfile_function():
    task = by_name("Task")["aws-custom-runtime-function"]
    (step,) = task["spec"]["steps"]
    written = re.search(r"<<'DOCKERFILE'\n(.*?)^DOCKERFILE$", step["script"],
                        re.DOTALL | re.MULTILINE)
    assert written, "the script writes no Dockerfile"
    assert written.group(1) == (ROOT / "deploy" / "Dockerfile.function").read_text()


def test_example_build_and_service_name_the_same_image():
    run = objects("PipelineRun")[0][1]
    image = next(p["value"] for p in run["spec"]["params"] if p["name"] == "IMAGE")
    services = {svc["metadata"]["name"]: svc for _, svc in objects("Service")}
    (c,) = services["bash-echo"]["spec"]["template"]["spec"]["containers"]
    assert c["image"] == image


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=rel)
def test_hadolint_passes(dockerfile):
    hadolint = shutil.which("hadolint")
    assert hadolint, "hadolint is missing: pip install -r deploy/test/requirements.txt"
    out = subprocess.run([hadolint, "--no-color", str(dockerfile)], check=False,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


# --- The checks catch what they claim to ---------------------------------------------


def wasm_service():
    return load(ROOT / "deploy" / "knative" / "wasm-echo.yaml")[0]


@pytest.mark.parametrize("mutate,expected", [
    (lambda c, s: c["env"].append({"name": "PORT", "value": "9000"}), "PORT is reserved"),
    (lambda c, s: c["ports"][0].update(containerPort=8012), "reserved by Knative"),
    (lambda c, s: c.update(stdin=True), "fields Knative refuses"),
    (lambda c, s: c["readinessProbe"].update(failureThreshold=3),
     "not allowed with periodSeconds 0"),
    (lambda c, s: c["livenessProbe"]["httpGet"].update(port="metrics"),
     "does not name the container port"),
    (lambda c, s: c["securityContext"].pop("seccompProfile"), "seccompProfile.type is unset"),
    (lambda c, s: c["resources"].update(limit={}), "'limit' was unexpected"),
    (lambda c, s: s.update(hostNetwork=True), "pod spec fields Knative refuses"),
    (lambda c, s: s.update(timeoutSeconds=3600), "timeoutSeconds"),
], ids=lambda x: x if isinstance(x, str) else "")
def test_knative_rules_refuse_broken_services(mutate, expected):
    svc = wasm_service()
    spec = svc["spec"]["template"]["spec"]
    mutate(spec["containers"][0], spec)
    errors = rules.knative_service(svc, K8S_VERSIONS[-1])
    assert any(expected in e for e in errors), errors


@pytest.mark.parametrize("mutate,expected", [
    (lambda t: t["spec"]["steps"][0]["env"].append({"name": "X", "value": "$(params.NOPE)"}),
     "undeclared param"),
    (lambda t: t["spec"]["steps"][0].update(command=["sh"]), "exclusive"),
    (lambda t: t["spec"]["params"].append({"name": "IMAGE"}), "declared twice"),
    (lambda t: t["spec"]["steps"][0]["env"].append({"name": "X", "value": "$(workspaces.x.path)"}),
     "undeclared workspace"),
    (lambda t: t["spec"]["steps"][0].update(resources={}), "does not know"),
], ids=lambda x: x if isinstance(x, str) else "")
def test_tekton_rules_refuse_broken_tasks(mutate, expected):
    task = load(ROOT / "runtime.yaml")[0]
    mutate(task)
    errors = rules.tekton_task(task, K8S_VERSIONS[-1])
    assert any(expected in e for e in errors), errors


def test_tekton_rules_refuse_a_run_missing_a_required_param():
    run = objects("PipelineRun")[0][1]
    run["spec"]["params"] = [p for p in run["spec"]["params"] if p["name"] != "RUNTIME_IMAGE"]
    errors = rules.tekton_pipeline_run(run, by_name("Pipeline"), K8S_VERSIONS[-1])
    assert any("required param RUNTIME_IMAGE" in e for e in errors), errors
