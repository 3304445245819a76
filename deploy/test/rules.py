"""What the Knative and Tekton webhooks would refuse, checked offline.

Their CRDs carry almost no schema (x-kubernetes-preserve-unknown-fields): the rules live in the
webhooks' Go code. These functions restate the ones our manifests touch (Knative Serving's
pkg/apis/serving/k8s_validation.go and fieldmask.go, Tekton Pipelines' v1 validation), and
wrap the pod-shaped parts (a revision's pod spec, a step, a volume claim template) as core
objects for the Kubernetes schema. Each check returns a list of error strings, empty when
the object passes; none of them does I/O.
"""

import re

import kubernetes_validate

DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def kubernetes_schema(obj, version):
    """Strict validation against the Kubernetes OpenAPI schema (unknown fields are errors)."""
    try:
        kubernetes_validate.validate(obj, version, strict=True)
    except kubernetes_validate.ValidationError as e:
        where = "/".join(str(p) for p in e.path)
        return [f"{obj['kind']} {where}: {e.message}"]
    except kubernetes_validate.SchemaNotFoundError as e:
        return [f"no Kubernetes schema for {e}"]
    return []


def as_pod(name, pod_spec):
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": pod_spec}


# --- Knative Serving -------------------------------------------------------------------

KNATIVE_REVISION_FIELDS = {
    "containerConcurrency", "timeoutSeconds", "responseStartTimeoutSeconds", "idleTimeoutSeconds",
}
# PodSpecMask and ContainerMask: what a revision may set without a feature flag.
KNATIVE_POD_FIELDS = {
    "serviceAccountName", "containers", "volumes", "imagePullSecrets", "enableServiceLinks",
}
KNATIVE_CONTAINER_FIELDS = {
    "name", "args", "command", "env", "workingDir", "envFrom", "image", "imagePullPolicy",
    "livenessProbe", "ports", "readinessProbe", "resources", "securityContext",
    "terminationMessagePath", "terminationMessagePolicy", "volumeMounts",
}
KNATIVE_SECURITY_CONTEXT_FIELDS = {
    "runAsUser", "runAsGroup", "runAsNonRoot", "readOnlyRootFilesystem", "capabilities",
    "allowPrivilegeEscalation", "seccompProfile",
}
KNATIVE_RESERVED_ENV = {"PORT", "K_SERVICE", "K_CONFIGURATION", "K_REVISION"}
# queue-proxy's and the activator's ports, and the profiling port.
KNATIVE_RESERVED_PORTS = {8012, 8013, 8022, 9090, 9091, 8008}
KNATIVE_MAX_TIMEOUT_SECONDS = 600  # max-revision-timeout-seconds, by default


def knative_service(svc, k8s_version):
    errors = []
    if svc.get("apiVersion") != "serving.knative.dev/v1" or svc.get("kind") != "Service":
        return [f"not a serving.knative.dev/v1 Service: {svc.get('apiVersion')} {svc.get('kind')}"]
    name = svc.get("metadata", {}).get("name", "")
    if not DNS1123_LABEL.match(name) or len(name) > 63:
        errors.append(f"metadata.name {name!r} is not a DNS-1123 label")
    template = svc.get("spec", {}).get("template", {})
    for key, value in template.get("metadata", {}).get("annotations", {}).items():
        if key.startswith("autoscaling.knative.dev/") and not re.fullmatch(r"\d+(\.\d+)?", value):
            errors.append(f"annotation {key}={value!r} is not a number")
    spec = template.get("spec")
    if not isinstance(spec, dict):
        return errors + ["spec.template.spec is missing"]

    cc = spec.get("containerConcurrency", 0)
    if not isinstance(cc, int) or not 0 <= cc <= 1000:
        errors.append(f"containerConcurrency {cc!r} is not in 0..1000")
    timeout = spec.get("timeoutSeconds", 300)
    if not isinstance(timeout, int) or not 0 <= timeout <= KNATIVE_MAX_TIMEOUT_SECONDS:
        errors.append(f"timeoutSeconds {timeout!r} is not in 0..{KNATIVE_MAX_TIMEOUT_SECONDS}")

    pod_spec = {k: v for k, v in spec.items() if k not in KNATIVE_REVISION_FIELDS}
    if extra := set(pod_spec) - KNATIVE_POD_FIELDS:
        errors.append(f"pod spec fields Knative refuses (without a feature flag): {sorted(extra)}")
    containers = pod_spec.get("containers") or []
    if len(containers) != 1:
        errors.append(f"expected one container, found {len(containers)}")
    for i, c in enumerate(containers):
        errors += [f"containers[{i}]: {e}" for e in knative_container(c)]
    errors += kubernetes_schema(as_pod(name or "service", pod_spec), k8s_version)
    return errors


def knative_container(c):
    errors = []
    if extra := set(c) - KNATIVE_CONTAINER_FIELDS:
        errors.append(f"fields Knative refuses: {sorted(extra)}")
    if not c.get("image"):
        errors.append("image is missing")
    for env in c.get("env", []):
        if env.get("name") in KNATIVE_RESERVED_ENV:
            errors.append(f"env {env['name']} is reserved (Knative sets it)")
    ports = c.get("ports", [])
    if len(ports) > 1:
        errors.append("more than one container port")
    port = ports[0] if ports else {"containerPort": 8080}
    if port.get("name", "") not in {"", "http1", "h2c"}:
        errors.append(f"port name {port['name']!r} is not '', http1 or h2c")
    if port.get("containerPort") in KNATIVE_RESERVED_PORTS:
        errors.append(f"port {port['containerPort']} is reserved by Knative")
    if port.get("protocol", "TCP") != "TCP":
        errors.append("the port's protocol must be TCP")
    for kind in ("readinessProbe", "livenessProbe"):
        if kind in c:
            probe_errors = knative_probe(c[kind], port, readiness=kind == "readinessProbe")
            errors += [f"{kind}: {e}" for e in probe_errors]
    sc = c.get("securityContext", {})
    if extra := set(sc) - KNATIVE_SECURITY_CONTEXT_FIELDS:
        errors.append(f"securityContext fields Knative refuses: {sorted(extra)}")
    if set(sc.get("capabilities", {})) - {"drop"}:
        errors.append("capabilities other than drop need a Knative feature flag")
    # Knative warns on each of these left at the Kubernetes (insecure) default.
    for field, ok in (
        ("runAsNonRoot", "runAsNonRoot" in sc),
        ("allowPrivilegeEscalation", "allowPrivilegeEscalation" in sc),
        ("seccompProfile.type", sc.get("seccompProfile", {}).get("type")),
        ("capabilities.drop", sc.get("capabilities", {}).get("drop") == ["ALL"]),
    ):
        if not ok:
            errors.append(f"securityContext.{field} is unset (Knative warns: insecure default)")
    return errors


def knative_probe(p, port, readiness):
    errors = []
    handlers = [h for h in ("httpGet", "tcpSocket", "exec", "grpc") if h in p]
    if len(handlers) != 1:
        errors.append(f"needs exactly one of httpGet, tcpSocket, exec, grpc; has {handlers}")
    for h in ("httpGet", "tcpSocket"):
        probe_port = p.get(h, {}).get("port")
        if isinstance(probe_port, str) and probe_port != port.get("name", "http"):
            errors.append(f"{h}.port {probe_port!r} does not name the container port")
    if readiness:
        if p.get("successThreshold", 1) < 1:
            errors.append("successThreshold must be at least 1")
        if p.get("periodSeconds", 0) == 0:
            # Knative's aggressive probing: it owns the timing.
            for field in ("failureThreshold", "timeoutSeconds"):
                if field in p:
                    errors.append(f"{field} is not allowed with periodSeconds 0")
        else:
            for field in ("timeoutSeconds", "failureThreshold"):
                if p.get(field, 1) < 1:
                    errors.append(f"{field} must be at least 1")
    return errors


# --- Tekton Pipelines ------------------------------------------------------------------

TEKTON_STEP_FIELDS = {
    "name", "displayName", "image", "command", "args", "workingDir", "env", "envFrom",
    "computeResources", "volumeMounts", "volumeDevices", "imagePullPolicy", "securityContext",
    "script", "timeout", "workspaces", "onError", "stdoutConfig", "stderrConfig", "params",
    "results", "when", "ref",
}
TEKTON_TASK_SPEC_FIELDS = {
    "description", "displayName", "params", "steps", "stepTemplate", "sidecars", "volumes",
    "workspaces", "results",
}
PARAM_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_.-]*$")
RESULT_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
VARIABLE = re.compile(r"\$\(([^()]*)\)")


def strings_in(node):
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for v in node.values():
            yield from strings_in(v)
    elif isinstance(node, list):
        for v in node:
            yield from strings_in(v)


def declared_params(params):
    errors, names = [], {}
    for p in params or []:
        name, kind = p.get("name", ""), p.get("type", "string")
        if not PARAM_NAME.match(name):
            errors.append(f"param name {name!r} is invalid")
        if name in names:
            errors.append(f"param {name} declared twice")
        if kind not in ("string", "array", "object"):
            errors.append(f"param {name}: type {kind!r} is not string, array or object")
        if "default" in p:
            expected = {"string": str, "array": list, "object": dict}.get(kind, object)
            if not isinstance(p["default"], expected):
                errors.append(f"param {name}: default does not match type {kind}")
        names[name] = p
    return names, errors


def references(spec, params, workspaces, results, task_names=()):
    """Every $(...) in spec names something declared."""
    errors = []
    for text in strings_in(spec):
        for var in VARIABLE.findall(text):
            parts = var.split(".")
            root = parts[0]
            if root == "params":
                name = parts[1].removesuffix("[*]") if len(parts) > 1 else ""
                if name not in params:
                    errors.append(f"$({var}) names an undeclared param")
                elif parts[1].endswith("[*]") and params[name].get("type") != "array":
                    errors.append(f"$({var}) expands a param that is not an array")
            elif root == "workspaces":
                if len(parts) != 3 or parts[1] not in workspaces:
                    errors.append(f"$({var}) names an undeclared workspace")
                elif parts[2] not in ("path", "bound", "claim", "volume"):
                    errors.append(f"$({var}): no such workspace variable")
            elif root == "results":
                if len(parts) != 3 or parts[1] not in results or parts[2] != "path":
                    errors.append(f"$({var}) names an undeclared result")
            elif root == "tasks":
                if len(parts) < 4 or parts[1] not in task_names or parts[2] != "results":
                    errors.append(f"$({var}) names no result of a pipeline task")
            elif root not in ("context", "steps"):
                errors.append(f"$({var}) is not a Tekton variable")
    return errors


def tekton_task_spec(spec, name, k8s_version):
    errors = []
    if extra := set(spec) - TEKTON_TASK_SPEC_FIELDS:
        errors.append(f"task spec fields Tekton does not know: {sorted(extra)}")
    params, perrs = declared_params(spec.get("params"))
    errors += perrs
    workspaces = {}
    for w in spec.get("workspaces", []):
        if set(w) - {"name", "description", "mountPath", "readOnly", "optional"}:
            errors.append(f"workspace {w.get('name')}: unknown fields")
        if w.get("name") in workspaces:
            errors.append(f"workspace {w['name']} declared twice")
        workspaces[w.get("name")] = w
    results = set()
    for r in spec.get("results", []):
        if not RESULT_NAME.match(r.get("name", "")):
            errors.append(f"result name {r.get('name')!r} is invalid")
        results.add(r.get("name"))
    steps = spec.get("steps") or []
    if not steps:
        errors.append("a Task needs at least one step")
    containers, seen = [], set()
    for i, step in enumerate(steps):
        where = f"steps[{i}]"
        if extra := set(step) - TEKTON_STEP_FIELDS:
            errors.append(f"{where}: fields Tekton does not know: {sorted(extra)}")
        step_name = step.get("name", "")
        if not DNS1123_LABEL.match(step_name) or step_name in seen:
            errors.append(f"{where}: name {step_name!r} is not a unique DNS-1123 label")
        seen.add(step_name)
        if not step.get("image"):
            errors.append(f"{where}: image is missing")
        if "script" in step and "command" in step:
            errors.append(f"{where}: script and command are exclusive")
        if "script" in step and not step["script"].startswith("#!"):
            errors.append(f"{where}: the script has no #! line (the image's shell is unknown)")
        # A step is a container with Tekton's own fields besides.
        container = {k: v for k, v in step.items()
                     if k in KNATIVE_CONTAINER_FIELDS | {"volumeDevices"}}
        if "computeResources" in step:
            container["resources"] = step["computeResources"]
        container["name"] = step_name or f"step-{i}"
        containers.append(container)
    errors += references(spec, params, workspaces, results)
    pod = {"containers": containers or [{"name": "none", "image": "none"}]}
    if spec.get("volumes"):
        pod["volumes"] = spec["volumes"]
    errors += kubernetes_schema(as_pod(name, pod), k8s_version)
    return errors


def tekton_task(task, k8s_version):
    if task.get("apiVersion") != "tekton.dev/v1" or task.get("kind") != "Task":
        return [f"not a tekton.dev/v1 Task: {task.get('apiVersion')} {task.get('kind')}"]
    name = task.get("metadata", {}).get("name", "")
    errors = [] if DNS1123_SUBDOMAIN.match(name) else [f"metadata.name {name!r} is invalid"]
    return errors + tekton_task_spec(task.get("spec", {}), name, k8s_version)


def bindings(kind, given, declared_params_, declared_workspaces):
    """Params and workspaces passed to a Task or Pipeline match what it declares."""
    errors = []
    passed = {p["name"] for p in given.get("params", [])}
    for name, p in declared_params_.items():
        if "default" not in p and name not in passed:
            errors.append(f"{kind}: required param {name} is not passed")
    for name in passed - set(declared_params_):
        errors.append(f"{kind}: param {name} is not declared")
    bound = {w["name"] for w in given.get("workspaces", [])}
    for w in declared_workspaces:
        if not w.get("optional") and w["name"] not in bound:
            errors.append(f"{kind}: workspace {w['name']} is not bound")
    for name in bound - {w["name"] for w in declared_workspaces}:
        errors.append(f"{kind}: workspace {name} is not declared")
    return errors


def tekton_pipeline(pipeline, tasks, k8s_version):
    """`tasks`: the Tasks a taskRef may name, by name."""
    if pipeline.get("apiVersion") != "tekton.dev/v1" or pipeline.get("kind") != "Pipeline":
        return ["not a tekton.dev/v1 Pipeline"]
    spec = pipeline.get("spec", {})
    params, errors = declared_params(spec.get("params"))
    workspaces = {w["name"]: w for w in spec.get("workspaces", [])}
    names = [t.get("name", "") for t in spec.get("tasks", [])]
    if not names:
        errors.append("a Pipeline needs at least one task")
    if len(set(names)) != len(names) or not all(DNS1123_LABEL.match(n) for n in names):
        errors.append(f"task names {names} are not unique DNS-1123 labels")
    for t in spec.get("tasks", []):
        where = f"task {t.get('name')}"
        for after in t.get("runAfter", []):
            if after not in names:
                errors.append(f"{where}: runAfter names no task: {after}")
        for w in t.get("workspaces", []):
            if w.get("workspace") not in workspaces:
                errors.append(f"{where}: binds undeclared pipeline workspace {w.get('workspace')}")
        # What the pipeline passes in is checked against the pipeline's declarations...
        passed = {k: t.get(k) for k in ("params", "workspaces", "when")}
        errors += [f"{where}: {e}"
                   for e in references(passed, params, workspaces, set(), names)]
        if ("taskRef" in t) == ("taskSpec" in t):
            errors.append(f"{where}: needs exactly one of taskRef and taskSpec")
            continue
        if "taskSpec" in t:
            # ... and an embedded task's body against its own.
            target = t["taskSpec"]
            errors += [f"{where}: {e}" for e in tekton_task_spec(target, t["name"], k8s_version)]
        else:
            ref = t["taskRef"].get("name")
            if ref not in tasks:
                errors.append(f"{where}: taskRef names no known Task: {ref}")
                continue
            target = tasks[ref]["spec"]
        target_params, _ = declared_params(target.get("params"))
        errors += bindings(where, t, target_params, target.get("workspaces", []))
    for r in spec.get("results", []):
        errors += references(r.get("value", ""), params, workspaces, set(), names)
    return errors


def tekton_pipeline_run(run, pipelines, k8s_version):
    if run.get("apiVersion") != "tekton.dev/v1" or run.get("kind") != "PipelineRun":
        return ["not a tekton.dev/v1 PipelineRun"]
    meta = run.get("metadata", {})
    if not (meta.get("name") or meta.get("generateName")):
        return ["metadata needs name or generateName"]
    spec = run.get("spec", {})
    ref = spec.get("pipelineRef", {}).get("name")
    if ref not in pipelines:
        return [f"pipelineRef names no known Pipeline: {ref}"]
    target = pipelines[ref]["spec"]
    target_params, errors = declared_params(target.get("params"))
    errors += bindings("PipelineRun", spec, target_params, target.get("workspaces", []))
    sources = ("volumeClaimTemplate", "persistentVolumeClaim", "emptyDir", "configMap", "secret",
               "projected", "csi")
    for w in spec.get("workspaces", []):
        given = [s for s in sources if s in w]
        if len(given) != 1:
            errors.append(f"workspace {w.get('name')}: needs one volume source, has {given}")
        if "volumeClaimTemplate" in w:
            pvc = {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                   "metadata": {"name": w["name"]}, **w["volumeClaimTemplate"]}
            errors += kubernetes_schema(pvc, k8s_version)
    return errors
