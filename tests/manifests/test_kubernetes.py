"""manifests/kubernetes/: schema-valid for the Kubernetes versions we target, and every deployment rule holds.

Each rule has failing cases: a mutated copy of the manifests must make that rule report a
problem. The settings the pods would start with are loaded through ``load_settings`` from
the environment the kubelet would give the container (image ENV, ConfigMap, Secret refs).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.manifests.checks import (
    KUBERNETES_VERSIONS,
    MANIFESTS,
    Bundle,
    Doc,
    Dockerfile,
    all_problems,
    container_env,
    main_container,
    pod_spec,
    schema_problems,
)

Mutation = Callable[[Bundle], None]


# ---- small editing helpers for the mutation table ----------------------------------------------------
def _walk(node: Any, path: str) -> tuple[Any, str | int]:
    keys: list[str | int] = [int(k) if k.isdigit() else k for k in path.split(".")]
    for key in keys[:-1]:
        node = node[key]
    return node, keys[-1]


def put(node: Doc, path: str, value: object) -> None:
    parent, key = _walk(node, path)
    parent[key] = value


def drop(node: Doc, path: str) -> None:
    parent, key = _walk(node, path)
    del parent[key]


def container(b: Bundle) -> Doc:
    return main_container(b)


def config(b: Bundle) -> Doc:
    data: Doc = b.one("ConfigMap")["data"]
    return data


def env_entry(b: Bundle, name: str) -> Doc:
    return next(e for e in container(b)["env"] if e["name"] == name)


def remove_env(b: Bundle, name: str) -> None:
    container(b)["env"] = [e for e in container(b)["env"] if e["name"] != name]


def mount(b: Bundle, path: str, volume: Doc) -> None:
    container(b)["volumeMounts"].append({"name": volume["name"], "mountPath": path})
    pod_spec(b)["volumes"].append(volume)


def unmount(b: Bundle, path: str) -> None:
    container(b)["volumeMounts"] = [m for m in container(b)["volumeMounts"] if m["mountPath"] != path]


def pod_and_container(b: Bundle, key: str, value: object) -> None:
    """Set a securityContext key at both levels (the container's wins over the pod's)."""
    put(pod_spec(b), f"securityContext.{key}", value)
    put(container(b), f"securityContext.{key}", value)


def sqlite_on_emptydir(b: Bundle) -> None:
    remove_env(b, "KAI_BRIDGE_STORE_URL")
    mount(b, "/var/lib/kai-bridge", {"name": "d", "emptyDir": {"sizeLimit": "1Gi"}})


# ---- schemas -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_document_validates_strictly_against_the_kubernetes_schema(bundle: Bundle, version: str) -> None:
    assert len(bundle.docs()) == 7
    assert schema_problems(bundle, version=version) == []


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        pytest.param(lambda b: put(b.one("Deployment"), "spec.replicas", "two"), "spec.replicas", id="mistyped-value"),
        pytest.param(lambda b: put(container(b), "livenessProbe.httpGet.pathh", "/health"), "pathh",
                     id="unknown-field"),
        pytest.param(lambda b: drop(container(b), "name"), "'name' is a required property",
                     id="required-field-missing"),
        pytest.param(lambda b: put(b.one("HorizontalPodAutoscaler"), "apiVersion", "autoscaling/v3"),
                     "Couldn't find schema", id="unknown-api-version"),
    ],
)
def test_a_document_that_breaks_the_schema_is_refused(bundle: Bundle, mutate: Mutation, expected: str) -> None:
    mutate(bundle)
    problems = schema_problems(bundle, version=KUBERNETES_VERSIONS[-1])
    assert any(expected in p for p in problems), problems


# ---- the deployment rules -------------------------------------------------------------------------------
def test_the_manifests_keep_every_deployment_rule(
    bundle: Bundle, dockerfile: Dockerfile, secret_values: dict[str, str]
) -> None:
    problems = all_problems(bundle, dockerfile, secret_values)
    assert set(problems) == {"kustomization", "security", "resources", "settings", "probes", "filesystem",
                             "secret", "topology"}
    assert {rule: found for rule, found in problems.items() if found} == {}


def test_the_kustomization_lists_every_file_in_the_folder(bundle: Bundle) -> None:
    on_disk = sorted(p.name for p in MANIFESTS.glob("*.y*ml") if p.name != "kustomization.yaml")
    assert sorted(bundle.kustomization["resources"]) == on_disk


def test_the_secret_values_reach_the_container_only_by_reference(
    bundle: Bundle, dockerfile: Dockerfile, secret_values: dict[str, str]
) -> None:
    """The env is what the tests load settings from: the Secret's values come from the fixture, not a file."""
    env = container_env(bundle, dockerfile, secret_values)
    assert env["KAI_BRIDGE_MCP_AUTH_TOKEN"] == secret_values["KAI_BRIDGE_MCP_AUTH_TOKEN"]
    assert env["KAI_BRIDGE_STORE_URL"].startswith("postgresql://")
    assert "KAI_BRIDGE_COZE_PRIVATE_KEY" not in env  # the PEM is a mounted file, never an env var
    assert not any(value == secret_values["coze_private_key.pem"] for value in env.values())


BROKEN: list[Any] = [
    # probes
    pytest.param("probes", lambda b: put(container(b), "livenessProbe.httpGet.path", "/ready"),
                 "livenessProbe must GET /health", id="liveness-on-ready"),
    pytest.param("probes", lambda b: put(container(b), "readinessProbe.httpGet.path", "/health"),
                 "readinessProbe must GET /ready", id="readiness-on-health"),
    pytest.param("probes", lambda b: drop(container(b), "readinessProbe"), "readinessProbe is missing",
                 id="no-readiness"),
    pytest.param("probes", lambda b: put(container(b), "livenessProbe", {"exec": {"command": ["true"]}}),
                 "must be an httpGet probe", id="exec-liveness"),
    pytest.param("probes", lambda b: drop(container(b), "readinessProbe.httpGet.httpHeaders"),
                 "sends no Host header", id="probe-without-host"),
    pytest.param("probes", lambda b: put(container(b), "livenessProbe.httpGet.httpHeaders.0.value", "evil.example"),
                 "neither loopback nor in mcp_allowed_hosts", id="probe-foreign-host"),
    pytest.param("probes", lambda b: put(container(b), "readinessProbe.httpGet.port", 9090),
                 "is not a container port", id="probe-wrong-port"),
    pytest.param("probes", lambda b: put(container(b), "readinessProbe.timeoutSeconds", 1),
                 "must exceed the checks' own", id="readiness-shorter-than-its-checks"),
    # non-root and friends
    pytest.param("security", lambda b: pod_and_container(b, "runAsUser", 0), "non-zero uid", id="root-uid"),
    pytest.param("security", lambda b: pod_and_container(b, "runAsUser", 20000), "differs from the image's USER", id="uid-not-the-image"),
    pytest.param("security", lambda b: pod_and_container(b, "runAsNonRoot", False),
                 "runAsNonRoot must be true", id="run-as-root-allowed"),
    pytest.param("security", lambda b: put(container(b), "securityContext.allowPrivilegeEscalation", True),
                 "allowPrivilegeEscalation must be false", id="privilege-escalation"),
    pytest.param("security", lambda b: put(container(b), "securityContext.privileged", True), "must not be privileged",
                 id="privileged"),
    pytest.param("security", lambda b: put(container(b), "securityContext.capabilities.drop", ["NET_RAW"]),
                 "capabilities must drop ALL", id="capabilities-kept"),
    pytest.param("security", lambda b: put(container(b), "securityContext.capabilities.add", ["NET_ADMIN"]),
                 "adds capabilities", id="capability-added"),
    pytest.param("security", lambda b: pod_and_container(b, "seccompProfile", {"type": "Unconfined"}),
                 "seccompProfile must be RuntimeDefault", id="seccomp-unconfined"),
    pytest.param("security", lambda b: put(pod_spec(b), "hostNetwork", True), "host's network", id="host-network"),
    pytest.param("security", lambda b: drop(pod_spec(b), "automountServiceAccountToken"),
                 "automountServiceAccountToken", id="api-token-mounted"),
    # file system
    pytest.param("filesystem", lambda b: put(container(b), "securityContext.readOnlyRootFilesystem", False),
                 "readOnlyRootFilesystem must be true", id="writable-root"),
    pytest.param("filesystem", lambda b: mount(b, "/var/lib/kai-bridge", {"name": "d", "hostPath": {"path": "/d"}}),
                 "must be an emptyDir", id="writable-hostpath"),
    pytest.param("filesystem", lambda b: unmount(b, "/tmp"), "/tmp must be a writable emptyDir", id="no-tmp"),
    pytest.param("filesystem", lambda b: drop(pod_spec(b), "volumes.0.emptyDir.sizeLimit"), "needs a sizeLimit",
                 id="unbounded-emptydir"),
    pytest.param("filesystem", lambda b: put(config(b), "KAI_BRIDGE_LOG_FILES", "true"), "file logs are on",
                 id="file-logs-on-read-only-root"),
    pytest.param("filesystem", lambda b: remove_env(b, "KAI_BRIDGE_STORE_URL"), "the store must be PostgreSQL",
                 id="no-postgresql"),
    pytest.param("filesystem", sqlite_on_emptydir,
                 "the state dies with the pod", id="sqlite-on-emptydir"),
    pytest.param("filesystem", lambda b: put(container(b), "volumeMounts.1.readOnly", False),
                 "secret/configMap mounts must be readOnly", id="writable-secret-mount"),
    # resources
    pytest.param("resources", lambda b: drop(container(b), "resources.limits"), "resources.limits.cpu is not set",
                 id="no-limits"),
    pytest.param("resources", lambda b: drop(container(b), "resources.requests.memory"),
                 "resources.requests.memory is not set", id="no-memory-request"),
    pytest.param("resources", lambda b: put(container(b), "resources.requests.memory", "96Mi"),
                 "over the measured idle RSS", id="request-below-idle-rss"),
    pytest.param("resources", lambda b: put(container(b), "resources.limits.memory", "256Mi"),
                 "under twice the measured peak", id="limit-too-tight"),
    pytest.param("resources", lambda b: put(container(b), "resources.requests.cpu", "1500m"),
                 "CPU request exceeds the limit", id="cpu-request-over-limit"),
    # the Secret template and who reads it
    pytest.param("secret", lambda b: put(b.one("Secret"), "stringData.KAI_BRIDGE_MCP_AUTH_TOKEN", "0123456789abcdef0"),
                 "has a value for KAI_BRIDGE_MCP_AUTH_TOKEN", id="template-with-a-value"),
    pytest.param("secret", lambda b: put(b.one("Secret"), "data", {"KAI_BRIDGE_COZE_KID": "YWJj"}),
                 "must not carry base64 data", id="template-with-data"),
    pytest.param("secret", lambda b: put(config(b), "KAI_BRIDGE_MCP_AUTH_TOKEN", "0123456789abcdef0"),
                 "a credential: it belongs in the Secret", id="token-in-configmap"),
    pytest.param("secret", lambda b: put(env_entry(b, "KAI_BRIDGE_STORE_URL"), "valueFrom.secretKeyRef.optional", True),
                 "is optional", id="optional-secret-key"),
    pytest.param("secret", lambda b: env_entry(b, "KAI_BRIDGE_MCP_AUTH_TOKEN").update(
                     {"value": "0123456789abcdef0", "valueFrom": None}),
                 "carries a literal value", id="literal-credential"),
    pytest.param("secret", lambda b: put(config(b), "KAI_BRIDGE_COZE_PRIVATE_KEY_PATH", "/keys/coze.pem"),
                 "but coze_private_key_path is", id="key-path-not-the-mount"),
    pytest.param("secret", lambda b: put(pod_spec(b), "volumes.1.secret.defaultMode", 0o444),
                 "readable by others", id="key-world-readable"),
    pytest.param("secret", lambda b: put(env_entry(b, "KAI_BRIDGE_COZE_KID"), "valueFrom.secretKeyRef.key", "kid"),
                 "which the template does not declare", id="undeclared-key"),
    pytest.param("secret", lambda b: remove_env(b, "KAI_BRIDGE_COZE_APP_ID"), "which the pod never reads",
                 id="declared-but-unread"),
    # the settings the container starts with
    pytest.param("settings", lambda b: put(config(b), "KAI_BRIDGE_NOT_A_SETTING", "1"),
                 "KAI_BRIDGE_NOT_A_SETTING is not a kai-bridge setting", id="unknown-setting"),
    pytest.param("settings", lambda b: put(config(b), "KAI_BRIDGE_SERVER_PORT", "eighty"),
                 "does not load", id="bad-value"),
    pytest.param("settings", lambda b: drop(pod_spec(b), "enableServiceLinks"),
                 "KAI_BRIDGE_SERVICE_HOST is not a kai-bridge setting", id="service-links-inject-kai-bridge-vars"),
    pytest.param("settings", lambda b: remove_env(b, "KAI_BRIDGE_MCP_AUTH_TOKEN"),
                 "would refuse to start", id="no-token-beyond-loopback"),
    # replicas, autoscaler, budget, service
    pytest.param("topology", lambda b: put(b.one("Deployment"), "spec.replicas", 1), "at least 2 replicas",
                 id="one-replica"),
    pytest.param("topology", lambda b: put(b.one("HorizontalPodAutoscaler"), "spec.minReplicas", 1),
                 "minReplicas must be at least 2", id="hpa-min-1"),
    pytest.param("topology", lambda b: put(b.one("HorizontalPodAutoscaler"), "spec.scaleTargetRef.name", "other"),
                 "not kai-bridge", id="hpa-wrong-target"),
    pytest.param("topology", lambda b: put(b.one("HorizontalPodAutoscaler"), "spec.metrics.0.resource.name", "memory"),
                 "must scale on CPU", id="hpa-not-cpu"),
    pytest.param("topology", lambda b: put(b.one("PodDisruptionBudget"), "spec.minAvailable", 2), "drains hang",
                 id="pdb-blocks-drains"),
    pytest.param("topology", lambda b: put(b.one("PodDisruptionBudget"), "spec.selector.matchLabels",
                                           {"app.kubernetes.io/name": "other"}),
                 "does not select the pods", id="pdb-selects-nothing"),
    pytest.param("topology", lambda b: put(b.one("Service"), "spec.selector", {"app": "kai"}),
                 "the Service does not select the pods", id="service-selects-nothing"),
    pytest.param("topology", lambda b: put(b.one("Service"), "spec.ports.0.targetPort", 9090),
                 "targetPort 9090 is not a container port", id="service-wrong-port"),
    pytest.param("topology", lambda b: put(config(b), "KAI_BRIDGE_SERVER_PORT", "9000"),
                 "serve listens on 9000", id="serve-port-not-exposed"),
    pytest.param("topology", lambda b: put(config(b), "KAI_BRIDGE_MCP_STATELESS", "false"),
                 "MCP sessions are per replica", id="stateful-mcp-without-stickiness"),
    # the entry point
    pytest.param("kustomization", lambda b: b.kustomization["resources"].remove("pdb.yaml"),
                 "does not list pdb.yaml", id="file-not-listed"),
    pytest.param("kustomization", lambda b: b.kustomization["resources"].append("ingress.yaml"),
                 "lists ingress.yaml, which does not exist", id="listed-file-missing"),
]


@pytest.mark.parametrize(("rule", "mutate", "expected"), BROKEN)
def test_a_manifest_that_breaks_a_rule_is_caught(
    bundle: Bundle, dockerfile: Dockerfile, secret_values: dict[str, str], rule: str, mutate: Mutation, expected: str
) -> None:
    mutate(bundle)
    problems = all_problems(bundle, dockerfile, secret_values)
    assert any(expected in p for p in problems.get(rule, [])), problems


def test_stateful_mcp_is_accepted_when_the_service_pins_clients(
    bundle: Bundle, dockerfile: Dockerfile, secret_values: dict[str, str]
) -> None:
    put(config(bundle), "KAI_BRIDGE_MCP_STATELESS", "false")
    put(bundle.one("Service"), "spec.sessionAffinity", "ClientIP")
    assert all_problems(bundle, dockerfile, secret_values)["topology"] == []
