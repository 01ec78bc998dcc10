"""The deployment artifacts' rules as plain functions: each returns the problems it finds, [] when none.

The tests run every rule on the real files (``manifests/kubernetes/``, ``Dockerfile``,
``.dockerignore``) and on mutated copies, which must each produce a problem. YAML documents
are JSON-shaped trees, hence ``Doc`` (a mapping of str to nested values) below.
"""

from __future__ import annotations

import copy
import re
import shlex
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import kubernetes_validate
import yaml
from kubernetes_validate.utils import SchemaNotFoundError

from kai_bridge.config import ENV_PREFIX, Settings, load_settings
from kai_bridge.errors import ConfigError
from kai_bridge.http.app import PING_TIMEOUT
from kai_bridge.http.security import check_http_security, is_loopback

REPO = Path(__file__).resolve().parents[2]
MANIFESTS = REPO / "manifests" / "kubernetes"
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"

# Oldest Kubernetes the manifests target (the preStop sleep action is beta, on by default, from
# 1.30) and the newest the installed kubernetes-validate knows.
KUBERNETES_VERSIONS = ("1.30.0", kubernetes_validate.latest_version())

# `kai-bridge serve` measured by hand (README "Deploying"): JWT against the sandbox, PostgreSQL
# store; idle after start, and the peak with 64 MCP clients calling send_message at once.
MEASURED_IDLE_RSS_MIB = 121
MEASURED_PEAK_RSS_MIB = 140

Doc = dict[str, Any]


# ---- loading ----------------------------------------------------------------------------------
@dataclass
class Bundle:
    """The manifests: documents by file name (a file may hold several), and the kustomization."""

    files: dict[str, list[Doc]]
    kustomization: Doc

    def docs(self) -> list[tuple[str, Doc]]:
        return [(name, doc) for name, docs in sorted(self.files.items()) for doc in docs]

    def one(self, kind: str) -> Doc:
        found = [doc for _, doc in self.docs() if doc.get("kind") == kind]
        if len(found) != 1:
            raise LookupError(f"expected exactly one {kind}, found {len(found)}")
        return found[0]

    def all(self, kind: str) -> list[Doc]:
        return [doc for _, doc in self.docs() if doc.get("kind") == kind]

    def copy(self) -> Bundle:
        return copy.deepcopy(self)


def load_bundle(directory: Path = MANIFESTS) -> Bundle:
    files: dict[str, list[Doc]] = {}
    kustomization: Doc = {}
    for path in sorted(directory.glob("*.y*ml")):
        docs = [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc is not None]
        if path.name == "kustomization.yaml":
            kustomization = docs[0]
        else:
            files[path.name] = docs
    return Bundle(files=files, kustomization=kustomization)


@dataclass
class Dockerfile:
    """A Dockerfile as (instruction, arguments) pairs, continuation lines joined, comments dropped."""

    instructions: list[tuple[str, str]]
    args: dict[str, str] = field(default_factory=dict)  # ARG defaults declared before the first FROM

    @classmethod
    def parse(cls, text: str) -> Dockerfile:
        logical: list[str] = []
        pending = ""
        for raw in text.splitlines():
            stripped = raw.strip()
            if not pending and (not stripped or stripped.startswith("#")):
                continue
            if pending and stripped.startswith("#"):
                continue
            if stripped.endswith("\\"):
                pending += stripped[:-1] + " "
                continue
            logical.append(pending + stripped)
            pending = ""
        if pending:
            logical.append(pending)
        instructions = []
        for line in logical:
            keyword, _, rest = line.partition(" ")
            instructions.append((keyword.upper(), rest.strip()))
        dockerfile = cls(instructions)
        for keyword, rest in instructions:
            if keyword == "FROM":
                break
            if keyword == "ARG" and "=" in rest:
                name, _, value = rest.partition("=")
                dockerfile.args[name.strip()] = value.strip()
        return dockerfile

    def stages(self) -> list[list[tuple[str, str]]]:
        """The instructions of each stage, from its FROM on."""
        stages: list[list[tuple[str, str]]] = []
        for keyword, rest in self.instructions:
            if keyword == "FROM":
                stages.append([])
            if stages:
                stages[-1].append((keyword, rest))
        return stages

    def base_image(self, from_args: str) -> str:
        words = [w for w in from_args.split() if not w.startswith("--")]
        image = words[0]
        for name, value in self.args.items():
            image = image.replace(f"${{{name}}}", value).replace(f"${name}", value)
        return image

    def env(self, stage: list[tuple[str, str]]) -> dict[str, str]:
        values: dict[str, str] = {}
        for keyword, rest in stage:
            if keyword == "ENV":
                for word in shlex.split(rest):
                    name, _, value = word.partition("=")
                    values[name] = value
        return values


def load_dockerfile(path: Path = DOCKERFILE) -> Dockerfile:
    return Dockerfile.parse(path.read_text(encoding="utf-8"))


# ---- helpers ----------------------------------------------------------------------------------
def pod_spec(bundle: Bundle) -> Doc:
    spec: Doc = bundle.one("Deployment")["spec"]["template"]["spec"]
    return spec


def main_container(bundle: Bundle) -> Doc:
    containers: list[Doc] = pod_spec(bundle)["containers"]
    return containers[0]


_CPU = re.compile(r"^(\d+(?:\.\d+)?)(m?)$")
_MEMORY = re.compile(r"^(\d+(?:\.\d+)?)(Ki|Mi|Gi|K|M|G)?$")
_MEMORY_UNITS = {None: 1, "K": 1000, "M": 1000**2, "G": 1000**3, "Ki": 1024, "Mi": 1024**2, "Gi": 1024**3}


def cpu_cores(quantity: object) -> float:
    match = _CPU.match(str(quantity))
    if not match:
        raise ValueError(f"not a CPU quantity: {quantity!r}")
    return float(match.group(1)) / (1000 if match.group(2) else 1)


def memory_mib(quantity: object) -> float:
    match = _MEMORY.match(str(quantity))
    if not match:
        raise ValueError(f"not a memory quantity: {quantity!r}")
    return float(match.group(1)) * _MEMORY_UNITS[match.group(2)] / 1024**2


def _under(path: PurePosixPath, mount: PurePosixPath) -> bool:
    return path == mount or mount in path.parents


def _secret_setting_names() -> set[str]:
    """Env names of settings that hold credentials (SecretStr fields, and the store URL's password)."""
    names = {ENV_PREFIX + "STORE_URL"}
    for name, info in Settings.model_fields.items():
        if "SecretStr" in str(info.annotation):
            names.add(ENV_PREFIX + name.upper())
    return names


# ---- the rules --------------------------------------------------------------------------------
def schema_problems(bundle: Bundle, *, version: str) -> list[str]:
    """Every document validates, strictly (no unknown fields), against Kubernetes ``version``."""
    problems = []
    for name, doc in bundle.docs():
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            where = ".".join(str(part) for part in exc.path)
            problems.append(f"{name}: {doc.get('kind')} does not validate against {version}: {where}: {exc.message}")
        except SchemaNotFoundError as exc:
            problems.append(f"{name}: {exc.message}")
    return problems


def kustomization_problems(bundle: Bundle, *, directory: Path = MANIFESTS) -> list[str]:
    """The kustomization is the entry point: it lists every manifest file, and only files that exist."""
    k = bundle.kustomization
    problems = []
    if k.get("apiVersion") != "kustomize.config.k8s.io/v1beta1" or k.get("kind") != "Kustomization":
        problems.append("kustomization.yaml: apiVersion/kind must be kustomize.config.k8s.io/v1beta1 Kustomization")
    listed = list(k.get("resources") or [])
    on_disk = sorted(p.name for p in directory.glob("*.y*ml") if p.name != "kustomization.yaml")
    for missing in sorted(set(on_disk) - set(listed)):
        problems.append(f"kustomization.yaml does not list {missing}")
    for extra in sorted(set(listed) - set(on_disk)):
        problems.append(f"kustomization.yaml lists {extra}, which does not exist")
    if len(listed) != len(set(listed)):
        problems.append("kustomization.yaml lists a file twice")
    unknown = set(k) - {"apiVersion", "kind", "resources", "images", "labels", "namespace", "commonAnnotations"}
    if unknown:
        problems.append(f"kustomization.yaml: unexpected fields {sorted(unknown)}")
    return problems


def _host_name(host: str) -> str:
    """The name in a Host header value: without the port, IPv6 brackets kept."""
    if host.startswith("["):
        return host.partition("]")[0] + "]"
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def probe_problems(bundle: Bundle, settings: Settings) -> list[str]:
    """Liveness on /health, readiness on /ready, on a declared port, with a Host kai-bridge accepts."""
    container = main_container(bundle)
    ports = {p.get("name"): p.get("containerPort") for p in container.get("ports", [])}
    problems = []
    expected = {"livenessProbe": "/health", "readinessProbe": "/ready", "startupProbe": "/health"}
    for probe_name, path in expected.items():
        probe = container.get(probe_name)
        if probe is None:
            if probe_name != "startupProbe":
                problems.append(f"{probe_name} is missing")
            continue
        http = probe.get("httpGet")
        if http is None:
            problems.append(f"{probe_name} must be an httpGet probe on {path}")
            continue
        if http.get("path") != path:
            problems.append(f"{probe_name} must GET {path}, not {http.get('path')}")
        port = http.get("port")
        if port not in ports and port not in ports.values():
            problems.append(f"{probe_name} port {port!r} is not a container port")
        hosts = [h.get("value", "") for h in http.get("httpHeaders", []) if str(h.get("name")).lower() == "host"]
        host = hosts[0] if hosts else ""
        if not host:
            problems.append(f"{probe_name} sends no Host header: the kubelet's pod-IP Host is not in the allowlist")
        elif not (is_loopback(_host_name(host)) or host in settings.mcp_allowed_hosts):
            problems.append(f"{probe_name} Host {host!r} is neither loopback nor in mcp_allowed_hosts")
    readiness = container.get("readinessProbe") or {}
    if float(readiness.get("timeoutSeconds", 1)) <= PING_TIMEOUT:
        problems.append(f"readinessProbe timeoutSeconds must exceed the checks' own {PING_TIMEOUT:g} s")
    return problems


def security_problems(bundle: Bundle, *, image_user: str | None = None) -> list[str]:
    """Non-root, no privilege escalation, no capabilities, seccomp RuntimeDefault, the image's uid."""
    pod = pod_spec(bundle)
    pod_sc: Doc = pod.get("securityContext") or {}
    problems = []
    for container in [*pod.get("initContainers", []), *pod.get("containers", [])]:
        name = container.get("name")
        sc: Doc = container.get("securityContext") or {}

        def effective(key: str, sc: Doc = sc) -> Any:
            return sc.get(key, pod_sc.get(key))

        if effective("runAsNonRoot") is not True:
            problems.append(f"{name}: runAsNonRoot must be true")
        uid = effective("runAsUser")
        if not isinstance(uid, int) or uid == 0:
            problems.append(f"{name}: runAsUser must be a non-zero uid, got {uid!r}")
        elif image_user is not None and str(uid) != image_user.split(":")[0]:
            problems.append(f"{name}: runAsUser {uid} differs from the image's USER {image_user}")
        if sc.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{name}: allowPrivilegeEscalation must be false")
        if sc.get("privileged") is True:
            problems.append(f"{name}: must not be privileged")
        caps: Doc = sc.get("capabilities") or {}
        if "ALL" not in (caps.get("drop") or []):
            problems.append(f"{name}: capabilities must drop ALL")
        if caps.get("add"):
            problems.append(f"{name}: adds capabilities {caps['add']}")
        seccomp: Doc = effective("seccompProfile") or {}
        if seccomp.get("type") != "RuntimeDefault":
            problems.append(f"{name}: seccompProfile must be RuntimeDefault")
    if pod.get("hostNetwork") or pod.get("hostPID") or pod.get("hostIPC"):
        problems.append("the pod must not share the host's network, PID or IPC namespace")
    if pod.get("automountServiceAccountToken") is not False:
        problems.append("automountServiceAccountToken must be false (kai-bridge never calls the Kubernetes API)")
    return problems


def _absolute(path: Path, workdir: PurePosixPath) -> PurePosixPath:
    posix = PurePosixPath(path.as_posix())
    return posix if posix.is_absolute() else workdir / posix


def filesystem_problems(bundle: Bundle, settings: Settings, *, workdir: PurePosixPath) -> list[str]:
    """Read-only root; writable mounts are emptyDirs; file logs and the data dir only where writable."""
    pod = pod_spec(bundle)
    container = main_container(bundle)
    problems = []
    if (container.get("securityContext") or {}).get("readOnlyRootFilesystem") is not True:
        problems.append("readOnlyRootFilesystem must be true")
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    writable: list[PurePosixPath] = []
    for mount in container.get("volumeMounts", []):
        volume = volumes.get(mount["name"], {})
        if "secret" in volume or "configMap" in volume:
            if mount.get("readOnly") is not True:
                problems.append(f"mount {mount['mountPath']}: secret/configMap mounts must be readOnly")
            continue
        if mount.get("readOnly") is True:
            continue
        if "emptyDir" not in volume:
            kinds = sorted(set(volume) - {"name"})
            problems.append(f"mount {mount['mountPath']}: a writable mount must be an emptyDir (state belongs in "
                            f"PostgreSQL), not {kinds}")
            continue
        if not (volume["emptyDir"] or {}).get("sizeLimit"):
            problems.append(f"emptyDir {mount['name']} needs a sizeLimit")
        writable.append(PurePosixPath(mount["mountPath"]))
    if PurePosixPath("/tmp") not in writable:
        problems.append("/tmp must be a writable emptyDir (Python and libraries expect a TMPDIR)")
    log_dir = _absolute(settings.log_dir, workdir)
    if settings.log_files and not any(_under(log_dir, m) for m in writable):
        problems.append(f"file logs are on (log_files) but log_dir {log_dir} is not on a writable mount: "
                        "set KAI_BRIDGE_LOG_FILES=false (stderr only) or mount an emptyDir there")
    data_dir = _absolute(settings.data_dir, workdir)
    if not settings.store_url.startswith(("postgresql://", "postgres://")):
        problems.append("the store must be PostgreSQL (KAI_BRIDGE_STORE_URL): replicas share their state there")
        if any(_under(data_dir, m) for m in writable):
            problems.append(f"the data dir {data_dir} is on an emptyDir with SQLite: the state dies with the pod")
    return problems


def resource_problems(bundle: Bundle) -> list[str]:
    """Requests and limits for CPU and memory, sized from the measured RSS."""
    resources: Doc = main_container(bundle).get("resources") or {}
    problems = []
    for kind in ("requests", "limits"):
        for resource in ("cpu", "memory"):
            if resource not in (resources.get(kind) or {}):
                problems.append(f"resources.{kind}.{resource} is not set")
    if problems:
        return problems
    requests, limits = resources["requests"], resources["limits"]
    if cpu_cores(requests["cpu"]) > cpu_cores(limits["cpu"]):
        problems.append("the CPU request exceeds the limit")
    if memory_mib(requests["memory"]) > memory_mib(limits["memory"]):
        problems.append("the memory request exceeds the limit")
    if memory_mib(requests["memory"]) < 1.25 * MEASURED_IDLE_RSS_MIB:
        problems.append(f"the memory request {requests['memory']} leaves < 25 % over the measured idle RSS "
                        f"({MEASURED_IDLE_RSS_MIB} MiB)")
    if memory_mib(limits["memory"]) < 2 * MEASURED_PEAK_RSS_MIB:
        problems.append(f"the memory limit {limits['memory']} is under twice the measured peak RSS "
                        f"({MEASURED_PEAK_RSS_MIB} MiB): an OOM kill ends every stream on the pod")
    return problems


def secret_problems(bundle: Bundle, env: Mapping[str, str]) -> list[str]:
    """The Secret template has keys and no values; everything secret comes from it, nothing from the ConfigMap."""
    problems = []
    secret = bundle.one("Secret")
    if secret.get("data"):
        problems.append("the Secret template must not carry base64 data")
    template: Doc = secret.get("stringData") or {}
    for key, value in template.items():
        if value not in ("", None):
            problems.append(f"the Secret template has a value for {key}")
    config: Doc = bundle.one("ConfigMap").get("data") or {}
    for name in sorted(_secret_setting_names() & set(config)):
        problems.append(f"the ConfigMap sets {name}, a credential: it belongs in the Secret")
    container = main_container(bundle)
    refs: list[str] = []
    for entry in container.get("env", []):
        ref = (entry.get("valueFrom") or {}).get("secretKeyRef")
        if ref is None:
            if entry["name"] in _secret_setting_names() and entry.get("value"):
                problems.append(f"env {entry['name']} carries a literal value: take it from the Secret")
            continue
        refs.append(ref["key"])
        if ref.get("name") != secret["metadata"]["name"]:
            problems.append(f"env {entry['name']} reads Secret {ref.get('name')!r}, not the template's")
        if ref.get("optional") is True:
            problems.append(f"env {entry['name']} is optional: a missing key must stop the pod, not start it blank")
    volumes = {v["name"]: v for v in pod_spec(bundle).get("volumes", [])}
    for mount in container.get("volumeMounts", []):
        volume_secret = volumes.get(mount["name"], {}).get("secret")
        if volume_secret is None:
            continue
        for item in volume_secret.get("items", []):
            refs.append(item["key"])
            path = PurePosixPath(mount["mountPath"]) / item["path"]
            key_path = env.get(ENV_PREFIX + "COZE_PRIVATE_KEY_PATH")
            if key_path is None or PurePosixPath(key_path) != path:
                problems.append(f"the Secret's {item['key']} is mounted at {path}, but coze_private_key_path is {key_path}")
        if volume_secret.get("defaultMode", 0o644) & 0o007:
            problems.append(f"secret volume {mount['name']} is readable by others (defaultMode)")
    for key in refs:
        if key not in template:
            problems.append(f"the pod reads Secret key {key}, which the template does not declare")
    for key in template:
        if key not in refs:
            problems.append(f"the template declares {key}, which the pod never reads")
    return problems


def service_link_env(bundle: Bundle) -> dict[str, str]:
    """What the kubelet injects for each Service when enableServiceLinks is on (the Docker-links variables)."""
    env: dict[str, str] = {}
    for service in bundle.all("Service"):
        name = service["metadata"]["name"].upper().replace("-", "_")
        for i, port in enumerate(service["spec"].get("ports", [])):
            number, proto = port["port"], port.get("protocol", "TCP")
            address = f"{proto.lower()}://10.96.0.10:{number}"
            if i == 0:
                env |= {f"{name}_SERVICE_HOST": "10.96.0.10", f"{name}_SERVICE_PORT": str(number),
                        f"{name}_PORT": address}
            if port.get("name"):
                env[f"{name}_SERVICE_PORT_{port['name'].upper().replace('-', '_')}"] = str(number)
            prefix = f"{name}_PORT_{number}_{proto}"
            env |= {prefix: address, f"{prefix}_PROTO": proto.lower(), f"{prefix}_PORT": str(number),
                    f"{prefix}_ADDR": "10.96.0.10"}
    return env


def container_env(bundle: Bundle, dockerfile: Dockerfile, secret_values: Mapping[str, str]) -> dict[str, str]:
    """The environment the container starts with, in the kubelet's order: image ENV, envFrom, env."""
    env = dockerfile.env(dockerfile.stages()[-1])
    if pod_spec(bundle).get("enableServiceLinks", True) is not False:
        env |= service_link_env(bundle)
    container = main_container(bundle)
    config_maps = {c["metadata"]["name"]: c.get("data") or {} for c in bundle.all("ConfigMap")}
    for source in container.get("envFrom", []):
        ref = source.get("configMapRef")
        if ref is not None:
            env |= {str(k): str(v) for k, v in config_maps.get(ref["name"], {}).items()}
    for entry in container.get("env", []):
        ref = (entry.get("valueFrom") or {}).get("secretKeyRef")
        if ref is not None:
            env[entry["name"]] = secret_values.get(ref["key"], "")
        else:
            env[entry["name"]] = str(entry.get("value", ""))
    return env


def serve_host(dockerfile: Dockerfile, bundle: Bundle) -> str:
    """The --host that `kai-bridge serve` gets: the container's args, else the image's CMD."""
    container = main_container(bundle)
    words: list[str] = list(container.get("args") or [])
    if not words:
        cmd = next((rest for keyword, rest in reversed(dockerfile.stages()[-1]) if keyword == "CMD"), "[]")
        words = list(yaml.safe_load(cmd))
    return words[words.index("--host") + 1] if "--host" in words else "127.0.0.1"


def settings_problems(env: Mapping[str, str], *, host: str) -> tuple[Settings | None, list[str]]:
    """Every KAI_BRIDGE_* name is a setting, the whole environment loads, and serve may bind ``host``."""
    problems = [f"{name} is not a kai-bridge setting" for name in sorted(env)
                if name.startswith(ENV_PREFIX) and name.removeprefix(ENV_PREFIX).lower() not in Settings.model_fields]
    try:
        settings = load_settings(environ=env, overrides={"server_host": host}, check_files=False)
    except ConfigError as exc:
        return None, [*problems, f"the container's environment does not load: {exc}"]
    try:
        check_http_security(settings)
    except ConfigError as exc:
        problems.append(f"serve --host {host} would refuse to start: {exc}")
    return settings, problems


def topology_problems(bundle: Bundle, settings: Settings) -> list[str]:
    """Replicas, autoscaler, disruption budget and Service agree with each other and with the pod."""
    problems = []
    deployment = bundle.one("Deployment")
    labels: Doc = deployment["spec"]["template"]["metadata"]["labels"]
    name = deployment["metadata"]["name"]

    def selects(selector: Mapping[str, str]) -> bool:
        return bool(selector) and all(labels.get(k) == v for k, v in selector.items())

    if int(deployment["spec"].get("replicas", 1)) < 2:
        problems.append("the Deployment must run at least 2 replicas")
    if not selects(deployment["spec"]["selector"].get("matchLabels", {})):
        problems.append("the Deployment's selector does not match its pod labels")
    hpa = bundle.one("HorizontalPodAutoscaler")
    if hpa["apiVersion"] != "autoscaling/v2":
        problems.append("the HorizontalPodAutoscaler must be autoscaling/v2")
    target = hpa["spec"]["scaleTargetRef"]
    if (target.get("kind"), target.get("name")) != ("Deployment", name):
        problems.append(f"the HorizontalPodAutoscaler scales {target.get('kind')}/{target.get('name')}, not {name}")
    min_replicas = int(hpa["spec"].get("minReplicas", 1))
    if min_replicas < 2:
        problems.append("the HorizontalPodAutoscaler's minReplicas must be at least 2")
    if int(hpa["spec"]["maxReplicas"]) < min_replicas:
        problems.append("maxReplicas is below minReplicas")
    if not any(m.get("type") == "Resource" and m["resource"]["name"] == "cpu" for m in hpa["spec"].get("metrics", [])):
        problems.append("the HorizontalPodAutoscaler must scale on CPU")
    pdb = bundle.one("PodDisruptionBudget")
    if not selects(pdb["spec"]["selector"].get("matchLabels", {})):
        problems.append("the PodDisruptionBudget does not select the pods")
    if "minAvailable" in pdb["spec"] and int(pdb["spec"]["minAvailable"]) >= min_replicas:
        problems.append("the PodDisruptionBudget's minAvailable leaves no pod to evict at minReplicas: drains hang")
    service = bundle.one("Service")
    if not selects(service["spec"].get("selector", {})):
        problems.append("the Service does not select the pods")
    ports = {p.get("name"): p.get("containerPort") for p in main_container(bundle).get("ports", [])}
    for port in service["spec"].get("ports", []):
        if port.get("targetPort") not in ports and port.get("targetPort") not in ports.values():
            problems.append(f"the Service's targetPort {port.get('targetPort')!r} is not a container port")
    if settings.server_port not in ports.values():
        problems.append(f"serve listens on {settings.server_port}, which is not a container port {sorted(ports.values())}")
    # MCP sessions live in one process: without stateless mode, requests must stick to a replica.
    if not settings.mcp_stateless and service["spec"].get("sessionAffinity") != "ClientIP":
        problems.append("MCP sessions are per replica: set KAI_BRIDGE_MCP_STATELESS=true or pin clients to a replica")
    return problems


# ---- Dockerfile and .dockerignore -----------------------------------------------------------------
_BUILD_TOOLS = ("gcc", "g++", "clang", "make", "build-essential", "cargo", "rustc", "libpq-dev", "python3-dev")
_SECRET_WORDS = re.compile(r"(?i)(token|secret|password|passwd|private_key|api_key|_pat$)")


def dockerfile_problems(dockerfile: Dockerfile) -> list[str]:
    """A slim pinned Python 3.11 base, multi-stage, non-root, no build tools, no secrets, exec-form start."""
    problems = []
    stages = dockerfile.stages()
    if len(stages) < 2:
        problems.append("build in a separate stage: the final image must not carry the build")
    for stage in stages:
        image = dockerfile.base_image(stage[0][1])
        if "$" in image:
            problems.append(f"FROM {image}: the base image must have a pinned default")
            continue
        tag = image.split("@")[0].rsplit(":", 1)[1] if ":" in image.split("@")[0].rsplit("/", 1)[-1] else ""
        if not re.match(r"^3\.11\.\d+-slim", tag):
            problems.append(f"FROM {image}: use a pinned slim Python 3.11 tag such as python:3.11.N-slim-bookworm")
    final = stages[-1] if stages else []
    for keyword, rest in dockerfile.instructions:
        if keyword == "ADD":
            problems.append(f"ADD {rest}: use COPY (ADD also fetches URLs and unpacks archives)")
        if keyword == "RUN" and re.search(r"\bapt-get\b.*\binstall\b", rest):
            if "--no-install-recommends" not in rest:
                problems.append("apt-get install without --no-install-recommends")
            if "rm -rf /var/lib/apt/lists" not in rest:
                problems.append("apt-get install without cleaning /var/lib/apt/lists in the same RUN")
        if keyword == "RUN" and re.search(r"\bpip\b.*\b(install|wheel)\b", rest) and "--no-cache-dir" not in rest:
            problems.append(f"pip without --no-cache-dir: {rest[:60]}")
        if keyword in ("ENV", "ARG"):
            for word in shlex.split(rest):
                name = word.partition("=")[0]
                if _SECRET_WORDS.search(name):
                    problems.append(f"{keyword} {name}: no secrets in the image (they end up in its history)")
    for keyword, rest in final:
        if keyword == "RUN" and any(re.search(rf"(?<![\w-]){re.escape(t)}(?![\w-])", rest) for t in _BUILD_TOOLS):
            problems.append(f"the final stage installs a build tool: {rest[:80]}")
        if keyword == "COPY" and "--from=" not in rest:
            problems.append(f"the final stage copies from the build context ({rest}): install the built wheel")
    users = [rest for keyword, rest in final if keyword == "USER"]
    if not users or not re.match(r"^[1-9]\d*(:[1-9]\d*)?$", users[-1]):
        problems.append("the final stage must switch to a numeric non-root USER (uid:gid)")
    entry = [rest for keyword, rest in final if keyword == "ENTRYPOINT"]
    cmd = [rest for keyword, rest in final if keyword == "CMD"]
    if not entry or yaml.safe_load(entry[-1]) != ["kai-bridge"]:
        problems.append('ENTRYPOINT must be ["kai-bridge"] (exec form: signals reach the process)')
    if not cmd or yaml.safe_load(cmd[-1]) != ["serve", "--host", "0.0.0.0"]:
        problems.append('CMD must be ["serve", "--host", "0.0.0.0"]')
    if not any(keyword == "HEALTHCHECK" for keyword, _ in final):
        problems.append("HEALTHCHECK is missing (Docker; Kubernetes uses the probes)")
    env = dockerfile.env(final)
    unknown = [n for n in env if n.startswith(ENV_PREFIX) and n.removeprefix(ENV_PREFIX).lower() not in Settings.model_fields]
    if unknown:
        problems.append(f"ENV {unknown} are not kai-bridge settings")
    return problems


def _glob_regex(pattern: str) -> re.Pattern[str]:
    """A .dockerignore pattern (Go filepath.Match plus ``**``) as a regex over slash paths."""
    out, i = "", 0
    while i < len(pattern):
        char = pattern[i]
        if pattern.startswith("**", i):
            i += 2
            if pattern.startswith("/", i):
                i += 1
                out += "(?:.*/)?"
            else:
                out += ".*"
            continue
        if char == "*":
            out += "[^/]*"
        elif char == "?":
            out += "[^/]"
        elif char == "[":
            end = pattern.index("]", i)
            out += "[" + pattern[i + 1 : end].replace("!", "^", 1) + "]"
            i = end
        else:
            out += re.escape(char)
        i += 1
    return re.compile(f"^{out}$")


def dockerignore_excludes(text: str, path: str) -> bool:
    """Whether Docker leaves ``path`` out of the build context (the last matching pattern decides;
    a pattern matching a parent folder matches everything in it)."""
    patterns = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        cleaned = str(PurePosixPath(line.removeprefix("!").strip().lstrip("/")))
        patterns.append((negated, _glob_regex(cleaned)))
    parts = PurePosixPath(path).parts
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for negated, regex in patterns:
        if any(regex.match(candidate) for candidate in candidates):
            excluded = not negated
    return excluded


# What must never reach the build context, and what the build needs.
MUST_EXCLUDE = (
    ".git/HEAD", ".venv/bin/python", ".env", "tests/data/cqi/cqi_arabica.csv", "tests/core/test_cli.py",
    "keys/private_key.pem", "private_key.pem", "kai_bridge/stray.pem", "kai_bridge/__pycache__/config.cpython-311.pyc",
    "data/kai-bridge.db", "logs/error.log", "scripts/dev", "manifests/kubernetes/deployment.yaml",
)


def build_inputs(dockerfile: Dockerfile) -> list[str]:
    """The context paths the build stage COPYs."""
    paths: list[str] = []
    for keyword, rest in dockerfile.instructions:
        if keyword == "COPY" and "--from=" not in rest:
            words = [w for w in shlex.split(rest) if not w.startswith("--")]
            paths += [w.rstrip("/") for w in words[:-1]]
    return paths


def dockerignore_problems(text: str, *, needed: Iterable[str], repo: Path = REPO) -> list[str]:
    problems = [f".dockerignore lets {p} into the build context" for p in MUST_EXCLUDE
                if not dockerignore_excludes(text, p)]
    for path in needed:
        files = [path] if (repo / path).is_file() else [
            p.relative_to(repo).as_posix() for p in (repo / path).rglob("*")
            if p.is_file() and "__pycache__" not in p.parts
        ]
        problems += [f".dockerignore leaves out {f}, which the build needs" for f in files
                     if dockerignore_excludes(text, f)]
    return problems



def final_workdir(dockerfile: Dockerfile) -> PurePosixPath:
    """Where the container starts (relative settings paths resolve against it)."""
    workdirs = [rest for keyword, rest in dockerfile.stages()[-1] if keyword == "WORKDIR"]
    return PurePosixPath(workdirs[-1] if workdirs else "/")


def final_user(dockerfile: Dockerfile) -> str | None:
    users = [rest for keyword, rest in dockerfile.stages()[-1] if keyword == "USER"]
    return users[-1] if users else None


def all_problems(bundle: Bundle, dockerfile: Dockerfile, secret_values: Mapping[str, str]) -> dict[str, list[str]]:
    """Every manifest rule at once, by rule name (the settings are loaded from the container's env)."""
    env = container_env(bundle, dockerfile, secret_values)
    settings, env_problems = settings_problems(env, host=serve_host(dockerfile, bundle))
    problems = {
        "kustomization": kustomization_problems(bundle),
        "secret": secret_problems(bundle, env),
        "security": security_problems(bundle, image_user=final_user(dockerfile)),
        "resources": resource_problems(bundle),
        "settings": env_problems,
    }
    if settings is not None:
        problems |= {
            "probes": probe_problems(bundle, settings),
            "filesystem": filesystem_problems(bundle, settings, workdir=final_workdir(dockerfile)),
            "topology": topology_problems(bundle, settings),
        }
    return problems
