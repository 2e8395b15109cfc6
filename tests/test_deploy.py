"""deploy/: Kubernetes manifests, the compose file and the Dockerfile, validated offline.

No container engine runs here, so the manifests are checked against the published schemas
that PyPI packages ship: the Kubernetes OpenAPI-derived JSON schemas (kubernetes-validate,
strict: unknown fields are errors), the compose-spec JSON schema (vendored by
check-jsonschema), and hadolint for the Dockerfile. KEDA's kinds are no built-in API: their
metadata is checked against the Kubernetes ObjectMeta schema and their spec against the
schema below, written from KEDA's documented fields (no PyPI package ships KEDA's CRD schema
without also installing a pytest plugin and a cluster test harness). Every validator is also
shown to reject a deliberately broken copy.
"""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
import sys
from importlib.resources import files
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import SchemaNotFoundError, schema_contents
from referencing import Registry, Resource

from omnijourney.settings import Settings, load_settings

ROOT = Path(__file__).resolve().parents[1]
K8S = ROOT / "deploy" / "k8s"
COMPOSE = ROOT / "deploy" / "compose" / "docker-compose.yml"
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
# The oldest Kubernetes minor still commonly run, and the newest the schemas package ships.
K8S_VERSIONS = ("1.30", kubernetes_validate.utils.latest_version())
NOT_KUBERNETES = {"kustomization.yaml"}  # kustomize's own config, not an API object
KEDA_FILE = "worker-keda.yaml"
# Command, health port of each component (the HTTP /health endpoints they serve).
COMPONENTS = {"worker": 6066, "collector": 8080, "sink": 6067}
# Stands in for a secret: long enough for any minimum a key setting has (the PII key: 32).
PLACEHOLDER = "x" * 48


def _documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def _k8s_objects() -> list[tuple[str, dict[str, Any]]]:
    found = []
    for path in sorted(K8S.glob("*.yaml")):
        if path.name not in NOT_KUBERNETES:
            found += [(path.name, doc) for doc in _documents(path)]
    return found


def _by_kind(kind: str) -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for _, doc in _k8s_objects() if doc["kind"] == kind}


def _kubernetes_problems(doc: dict[str, Any], version: str) -> list[str]:
    """Schema errors of one built-in object against Kubernetes `version` (strict)."""
    try:
        kubernetes_validate.validate(doc, version, strict=True)
    except kubernetes_validate.ValidationError as exc:
        return [f"{'.'.join(map(str, exc.path))}: {exc.message}"]
    return []


_K8S_DEFS = "https://kubernetes.io/api/_definitions.json"
_NAME = {"type": "string", "minLength": 1}
_KEDA_SPECS: dict[str, dict[str, Any]] = {
    # KEDA v2 ScaledObject (keda.sh/v1alpha1), the fields its documentation lists.
    "ScaledObject": {
        "type": "object",
        "additionalProperties": False,
        "required": ["scaleTargetRef", "triggers"],
        "properties": {
            "scaleTargetRef": {
                "type": "object",
                "additionalProperties": False,
                "required": ["name"],
                "properties": {
                    "name": _NAME,
                    "apiVersion": {"type": "string"},
                    "kind": {"type": "string"},
                    "envSourceContainerName": {"type": "string"},
                },
            },
            **{
                name: {"type": "integer", "minimum": 0}
                for name in (
                    "pollingInterval",
                    "cooldownPeriod",
                    "initialCooldownPeriod",
                    "idleReplicaCount",
                    "minReplicaCount",
                    "maxReplicaCount",
                )
            },
            "fallback": {"type": "object"},
            "advanced": {"type": "object"},
            "triggers": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["type", "metadata"],
                    "properties": {
                        "type": _NAME,
                        "name": {"type": "string"},
                        "metadata": {"type": "object", "additionalProperties": {"type": "string"}},
                        "metricType": {"enum": ["AverageValue", "Value", "Utilization"]},
                        "useCachedMetrics": {"type": "boolean"},
                        "authenticationRef": {
                            "type": "object",
                            "additionalProperties": False,
                            "required": ["name"],
                            "properties": {"name": _NAME, "kind": {"type": "string"}},
                        },
                    },
                },
            },
        },
    },
    # KEDA v2 TriggerAuthentication: the secret-based sources (others exist: vaults, identity).
    "TriggerAuthentication": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "secretTargetRef": {
                "type": "array",
                "items": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["parameter", "name", "key"],
                    "properties": {"parameter": _NAME, "name": _NAME, "key": _NAME},
                },
            },
            "env": {"type": "array"},
            "configMapTargetRef": {"type": "array"},
            "podIdentity": {"type": "object"},
            "hashiCorpVault": {"type": "object"},
            "azureKeyVault": {"type": "object"},
            "awsSecretManager": {"type": "object"},
            "gcpSecretManager": {"type": "object"},
            "boundServiceAccountToken": {"type": "array"},
        },
    },
}


def _keda_problems(doc: dict[str, Any]) -> list[str]:
    """Errors of a KEDA object: Kubernetes ObjectMeta schema for metadata, KEDA's spec fields."""
    spec = _KEDA_SPECS.get(doc.get("kind", ""))
    if spec is None or doc.get("apiVersion") != "keda.sh/v1alpha1":
        return [f"{doc.get('apiVersion')} {doc.get('kind')} is not a KEDA kind we know"]
    definitions = schema_contents(
        f"kubernetes-json-schema/v{K8S_VERSIONS[-1]}-local-strict/_definitions.json",
        K8S_VERSIONS[-1],
    )
    schema = {
        "type": "object",
        "additionalProperties": False,
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {
                "$ref": f"{_K8S_DEFS}#/$defs/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
            },
            "spec": spec,
        },
    }
    registry: Registry = Resource.from_contents(definitions) @ Registry()
    validator = jsonschema.Draft202012Validator(schema, registry=registry)
    return [
        f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(doc)
    ]


def _compose_schema() -> dict[str, Any]:
    vendor = files("check_jsonschema.builtin_schemas.vendor")
    schema: dict[str, Any] = json.loads(vendor.joinpath("compose-spec.json").read_text())
    return schema


def _compose_problems(doc: Any) -> list[str]:
    validator = jsonschema.Draft7Validator(_compose_schema())
    return [
        f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(doc)
    ]


def _hadolint() -> str:
    exe = shutil.which("hadolint") or shutil.which(
        "hadolint", path=str(Path(sys.executable).parent)
    )
    if exe is None:
        pytest.fail("hadolint is missing: install the dev extra (pip install -e '.[dev]')")
    return exe


def _settings_from_env(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> Settings:
    for name in [n for n in __import__("os").environ if n.startswith("OMNIJOURNEY_")]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return load_settings()


# ------------------------------------------------------------------ Kubernetes: schemas


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_every_builtin_object_validates_against_the_kubernetes_schema(version: str) -> None:
    checked = []
    for name, doc in _k8s_objects():
        if name == KEDA_FILE:
            continue
        assert _kubernetes_problems(doc, version) == [], f"{name}: {doc['kind']}"
        checked.append(doc["kind"])
    expected = {
        "Namespace",
        "ConfigMap",
        "Secret",
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
    }
    assert set(checked) == expected
    assert checked.count("Deployment") == 3


def test_the_keda_alternative_validates_against_objectmeta_and_keda_fields() -> None:
    docs = _documents(K8S / KEDA_FILE)
    assert [d["kind"] for d in docs] == ["ScaledObject", "TriggerAuthentication"]
    for doc in docs:
        assert _keda_problems(doc) == [], doc["kind"]
    # A KEDA object is no built-in kind: the Kubernetes schemas cannot vouch for it.
    with pytest.raises(SchemaNotFoundError):
        kubernetes_validate.validate(docs[0], K8S_VERSIONS[-1], strict=True)


def _broken(path: Path, old: str, new: str, tmp_path: Path) -> Path:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path.name}"
    broken = tmp_path / path.name
    broken.write_text(text.replace(old, new, 1))
    return broken


@pytest.mark.parametrize(
    ("file", "old", "new", "reason"),
    [
        ("worker.yaml", "  replicas: 2", "  replicaz: 2", "replicaz"),  # a typo (strict schema)
        ("worker.yaml", "containerPort: 6066", "containerPort: web", "not of type 'integer'"),
        ("collector.yaml", "  type: ClusterIP", "  type: 42", "42"),
        ("worker-hpa.yaml", "  scaleTargetRef:", "  scaleTarget:", "scaleTarget"),
    ],
)
def test_a_broken_kubernetes_manifest_is_rejected(
    file: str, old: str, new: str, reason: str, tmp_path: Path
) -> None:
    broken = _broken(K8S / file, old, new, tmp_path)
    problems = [p for doc in _documents(broken) for p in _kubernetes_problems(doc, "1.30")]
    assert problems, f"the broken copy of {file} passed"
    assert reason in " ".join(problems)


@pytest.mark.parametrize(
    ("old", "new", "reason"),
    [
        ("maxReplicaCount: 12", "maxReplicaCount: many", "'many' is not of type 'integer'"),
        ("  scaleTargetRef:\n    name:", "  scaleTargetRf:\n    name:", "scaleTargetRef"),
        ("pollingInterval: 15", "pollingIntervall: 15", "pollingIntervall"),
        ("  namespace: omnijourney\n", "  namespace: omnijourney\n  nmae: x\n", "nmae"),
        ('lagThreshold: "1000"', "lagThreshold: 1000", "1000 is not of type 'string'"),
    ],
)
def test_a_broken_keda_manifest_is_rejected(
    old: str, new: str, reason: str, tmp_path: Path
) -> None:
    broken = _broken(K8S / KEDA_FILE, old, new, tmp_path)
    problems = [p for doc in _documents(broken) for p in _keda_problems(doc)]
    assert problems
    assert reason in " ".join(problems)


# ------------------------------------------------------------- Kubernetes: consistency


def _container(deployment: dict[str, Any]) -> dict[str, Any]:
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    return container


@pytest.mark.parametrize(("component", "port"), COMPONENTS.items())
def test_each_component_runs_its_command_with_probes_on_its_health_endpoint(
    component: str, port: int
) -> None:
    deployment = _by_kind("Deployment")[f"omnijourney-{component}"]
    container = _container(deployment)
    assert container["args"] == [component]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    for probe in ("readinessProbe", "livenessProbe"):
        get = container[probe]["httpGet"]
        assert get["path"] == "/health"
        assert ports[get["port"]] == port
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()


def test_every_pod_runs_unprivileged_as_the_restricted_namespace_demands() -> None:
    namespace = _by_kind("Namespace")["omnijourney"]
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    for name, deployment in _by_kind("Deployment").items():
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault", name
        context = _container(deployment)["securityContext"]
        assert context["allowPrivilegeEscalation"] is False, name
        assert context["capabilities"]["drop"] == ["ALL"], name
        assert context["readOnlyRootFilesystem"] is True, name


def test_settings_come_from_the_configmap_and_the_secret() -> None:
    configmaps, secrets = _by_kind("ConfigMap"), _by_kind("Secret")
    for name, deployment in _by_kind("Deployment").items():
        refs = _container(deployment)["envFrom"]
        assert refs[0]["configMapRef"]["name"] in configmaps, name
        assert refs[1]["secretRef"]["name"] in secrets, name


def test_the_secret_template_holds_placeholders_only() -> None:
    [secret] = _documents(K8S / "secret.template.yaml")
    values = secret["stringData"]
    assert values
    # Every value is a placeholder (JSON-valued ones keep their shape around REPLACE_ME).
    assert all(value == "REPLACE_ME" or "REPLACE_ME" in value for value in values.values())
    assert all(value == "REPLACE_ME" or value.lstrip().startswith("{") for value in values.values())
    assert "data" not in secret


def test_configmap_and_secret_keys_are_settings_omnijourney_accepts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    env = dict(_by_kind("ConfigMap")["omnijourney-settings"]["data"])
    secret = _by_kind("Secret")["omnijourney-secrets"]["stringData"]
    # JSON-valued secrets keep their JSON-shaped placeholder; the others get a long dummy.
    env |= {key: v if v.lstrip().startswith("{") else PLACEHOLDER for key, v in secret.items()}
    settings = _settings_from_env(monkeypatch, env)
    assert settings.kafka.bootstrap == "omnijourney-kafka-bootstrap.kafka.svc:9093"
    assert settings.kafka.security_protocol == "SASL_SSL"
    assert (settings.kafka.replication_factor, settings.kafka.min_insync_replicas) == (3, 2)
    assert settings.clickhouse.embedded is False


def test_the_collector_service_reaches_the_collector_pods() -> None:
    service = _by_kind("Service")["omnijourney-collector"]
    deployment = _by_kind("Deployment")["omnijourney-collector"]
    assert (
        service["spec"]["selector"].items()
        <= deployment["spec"]["template"]["metadata"]["labels"].items()
    )
    names = {p["name"] for p in _container(deployment)["ports"]}
    assert {p["targetPort"] for p in service["spec"]["ports"]} <= names


def test_both_autoscalers_scale_the_worker_on_the_lag_of_its_group() -> None:
    hpa = _by_kind("HorizontalPodAutoscaler")["omnijourney-worker"]
    scaled = _by_kind("ScaledObject")["omnijourney-worker"]
    assert hpa["spec"]["scaleTargetRef"]["name"] == "omnijourney-worker"
    assert scaled["spec"]["scaleTargetRef"]["name"] == "omnijourney-worker"
    [metric] = hpa["spec"]["metrics"]
    assert metric["type"] == "External"
    group = metric["external"]["metric"]["selector"]["matchLabels"]["consumergroup"]
    [trigger] = scaled["spec"]["triggers"]
    assert trigger["type"] == "kafka"
    assert trigger["metadata"]["consumerGroup"] == group
    assert hpa["spec"]["maxReplicas"] == scaled["spec"]["maxReplicaCount"]
    assert hpa["spec"]["minReplicas"] == scaled["spec"]["minReplicaCount"]


def test_kustomization_applies_the_manifests_but_not_the_template_or_the_alternative() -> None:
    [kustomization] = _documents(K8S / "kustomization.yaml")
    resources = kustomization["resources"]
    assert all((K8S / name).is_file() for name in resources)
    assert KEDA_FILE not in resources
    assert "secret.template.yaml" not in resources
    every = {p.name for p in K8S.glob("*.yaml")} - NOT_KUBERNETES
    assert every - set(resources) == {KEDA_FILE, "secret.template.yaml"}


# ------------------------------------------------------------------------------ compose


def _compose() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return doc


def test_the_compose_file_validates_against_the_compose_spec() -> None:
    assert _compose_problems(_compose()) == []


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda d: d["services"]["worker"].update(imagee="x"), "imagee"),
        (lambda d: d["services"]["worker"].update(command=42), "42"),
        (lambda d: d["services"]["worker"]["deploy"].update(replicass=2), "replicass"),
        (lambda d: d["services"]["clickhouse"].update(ports="8123:8123"), "8123:8123"),
        (lambda d: d["services"]["sink"]["depends_on"]["migrate"].update(condition="done"), "done"),
    ],
)
def test_a_broken_compose_file_is_rejected(change: Any, reason: str, tmp_path: Path) -> None:
    broken = copy.deepcopy(_compose())
    change(broken)
    path = tmp_path / "docker-compose.yml"
    path.write_text(yaml.safe_dump(broken))
    problems = _compose_problems(yaml.safe_load(path.read_text()))
    assert problems
    assert reason in " ".join(problems)


def test_compose_runs_a_kafka_cluster_clickhouse_and_two_workers() -> None:
    services = _compose()["services"]
    kafka = [name for name in services if name.startswith("kafka-")]
    assert len(kafka) == 3
    assert {services[k]["image"] for k in kafka} == {"apache/kafka:3.9.2"}
    voters = {services[k]["environment"]["KAFKA_CONTROLLER_QUORUM_VOTERS"] for k in kafka}
    assert len(voters) == 1
    assert {services[k]["environment"]["KAFKA_NODE_ID"] for k in kafka} == {1, 2, 3}
    image = services["clickhouse"]["image"]
    # ClickHouse LTS lines are the .3 and .8 releases of a year.
    assert re.fullmatch(r"clickhouse/clickhouse-server:\d{2}\.[38](\.\d+)*", image), image
    for component in COMPONENTS:
        assert services[component]["command"] == [component]
        assert services[component]["build"]["dockerfile"] == "deploy/Dockerfile"
    assert services["worker"]["deploy"]["replicas"] == 2
    assert (COMPOSE.parent / services["worker"]["build"]["context"] / "deploy/Dockerfile").is_file()


def test_compose_publishes_on_loopback_only_and_takes_secrets_from_the_env_file() -> None:
    services = _compose()["services"]
    for name, service in services.items():
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:"), f"{name} publishes {port} on every interface"
    text = COMPOSE.read_text()
    for secret in ("CLICKHOUSE_PASSWORD", "PII_HASH_KEY", "COLLECTOR_WRITE_KEYS"):
        assert f"${{{secret}:?" in text, f"{secret} must be required from the env file"
    assert ".env" in (ROOT / ".gitignore").read_text().split()
    example = (COMPOSE.parent / "env.example").read_text()
    assignments = [line for line in example.splitlines() if line and not line.startswith("#")]
    assert {line.split("=", 1)[0] for line in assignments} == {
        "CLICKHOUSE_PASSWORD",
        "PII_HASH_KEY",
        "COLLECTOR_WRITE_KEYS",
    }
    assert all("replace-me" in line for line in assignments)


def test_compose_settings_are_settings_omnijourney_accepts(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {
        key: str(value).lower() if isinstance(value, bool) else str(value)
        for key, value in _compose()["services"]["worker"]["environment"].items()
    }
    # ${VAR:?message} is filled in by compose from the env file; any value will do here.
    env = {k: PLACEHOLDER if v.startswith("${") else v for k, v in env.items()}
    settings = _settings_from_env(monkeypatch, env)
    assert settings.kafka.bootstrap == "kafka-1:9092,kafka-2:9092,kafka-3:9092"
    assert settings.clickhouse.host == "clickhouse"


# --------------------------------------------------------------------------- Dockerfile


def test_the_dockerfile_passes_hadolint() -> None:
    result = subprocess.run(
        [_hadolint(), "--no-color", str(DOCKERFILE)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("old", "new", "rule"),
    [
        ("FROM python:3.11-slim-bookworm AS build", "FROM python AS build", "DL3006"),
        ("USER 10001:10001", "USER root", "DL3002"),
    ],
)
def test_a_broken_dockerfile_is_rejected(old: str, new: str, rule: str, tmp_path: Path) -> None:
    broken = _broken(DOCKERFILE, old, new, tmp_path)
    result = subprocess.run(
        [_hadolint(), "--no-color", str(broken)], capture_output=True, text=True, check=False
    )
    assert result.returncode != 0
    assert rule in result.stdout


def test_the_image_copies_what_the_package_needs_and_runs_the_cli_as_non_root() -> None:
    text = DOCKERFILE.read_text()
    for source in re.findall(r"^COPY (?!--from)(\S+(?: \S+)*) \S+$", text, flags=re.M):
        for part in source.split():
            assert (ROOT / part).exists(), f"COPY {part}: missing from the repository"
    assert 'ENTRYPOINT ["omnijourney"]' in text
    assert re.search(r"^USER 10001", text, flags=re.M)
