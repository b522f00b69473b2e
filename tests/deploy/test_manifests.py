"""deploy/: the compose file, the Kubernetes manifests and HAProxy's configuration agree
with the Dockerfile and the service (ports, routes, settings, metrics), without docker or
kubectl (docker compose checks the compose file when it is installed); HAProxy's
configuration is checked in test_haproxy_config.py."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography.fernet import Fernet
from pydantic import ValidationError

from app.config import Settings
from app.metrics import Metrics
from app.routes import health

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
GOOD_SECRETS = {
    "SANDLOT_ADMIN_KEY": "k" * 40,
    "SANDLOT_SECRETS_KEY": Fernet.generate_key().decode(),
    "POSTGRES_PASSWORD": "pw",
}


def _dockerfile() -> tuple[dict[str, str], str, int]:
    """The final stage's ENV values, its USER and the uid it creates."""
    text = (ROOT / "Dockerfile").read_text()
    final = text[text.rindex("\nFROM ") :]
    logical = re.sub(r"\\\n\s*", " ", final)
    env: dict[str, str] = {}
    for line in logical.splitlines():
        if line.startswith("ENV "):
            env.update(re.findall(r"(\w+)=(\S+)", line))
    user = re.search(r"^USER (\S+)", final, re.M)
    uid = re.search(r"useradd .*--uid (\d+) (\S+)", final)
    assert user and uid and uid.group(2) == user.group(1)
    return env, user.group(1), int(uid.group(1))


def _documents() -> dict[tuple[str, str], dict[str, Any]]:
    """Every Kubernetes object under deploy/k8s by (kind, name)."""
    objects = {}
    for path in sorted(K8S.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc.get("kind") != "Kustomization":
                objects[(doc["kind"], doc["metadata"]["name"])] = doc
    return objects


def _only(kind: str) -> dict[str, Any]:
    found = [doc for (k, _), doc in _documents().items() if k == kind]
    assert len(found) == 1, f"one {kind} expected, found {len(found)}"
    return found[0]


def _container() -> dict[str, Any]:
    containers = _only("Deployment")["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def _setting_names() -> set[str]:
    return {f"SANDLOT_{name.upper()}" for name in Settings.model_fields}


def _compose() -> dict[str, Any]:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())


def _interpolate(value: str, env: dict[str, str]) -> str:
    """compose's ${NAME}, ${NAME:-default} and ${NAME:?error}, and $$ for $."""

    def one(match: re.Match[str]) -> str:
        name, op, rest = match.group(1), match.group(2), match.group(3)
        if name in env and env[name] != "":
            return env[name]
        if op == ":-":
            return rest
        raise AssertionError(f"compose needs {name}: {rest}")

    value = re.sub(r"\$\{(\w+)(?:(:-|:\?)([^}]*))?\}", one, value)
    return value.replace("$$", "$")


def test_every_manifest_parses_and_the_kustomization_applies_them_all() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    files = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == files
    kinds = {kind for kind, _ in _documents()}
    assert kinds == {
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "Secret",
        "ConfigMap",
    }
    # The image the kustomization sets is the one the Deployment runs.
    assert {i["name"] for i in kustomization["images"]} == {_container()["image"]}


def test_probes_use_the_health_routes_on_the_dockerfile_port() -> None:
    env, _, _ = _dockerfile()
    routes = {route.path for route in health.router.routes}  # type: ignore[attr-defined]
    container = _container()
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"http": int(env["SANDLOT_PORT"])}
    expected = {
        "livenessProbe": "/healthz",
        "readinessProbe": "/readyz",
        "startupProbe": "/healthz",
    }
    for probe, path in expected.items():
        get = container[probe]["httpGet"]
        assert get["path"] == path and path in routes, probe
        assert get["port"] in ports or get["port"] == ports["http"], probe
    # The Dockerfile's own HEALTHCHECK asks the same route on the same port.
    assert f"127.0.0.1:{env['SANDLOT_PORT']}/readyz" in (ROOT / "Dockerfile").read_text()


def test_the_pod_runs_as_the_dockerfiles_user_with_what_the_pools_are_sized_for() -> None:
    _, _, uid = _dockerfile()
    pod = _only("Deployment")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsUser"] == uid and pod["securityContext"]["runAsNonRoot"]
    resources = _container()["resources"]
    assert {"cpu", "memory"} <= set(resources["requests"])
    assert "memory" in resources["limits"]
    settings = _only("ConfigMap")["data"]
    # A container sees the node's CPUs: the pool is sized from the pod's request.
    assert int(settings["SANDLOT_POOL_SIZE"]) == int(resources["requests"]["cpu"])
    # Every run slot at the default memory cap, plus the processes themselves (~0.8 GiB
    # measured idle), fits under the limit.
    slots = int(settings["SANDLOT_POOL_SIZE"]) * int(settings["SANDLOT_RUNS_PER_WORKER"])
    default_mb = Settings.model_fields["default_memory_mb"].default
    limit_mb = int(resources["limits"]["memory"].removesuffix("Gi")) * 1024
    assert slots * default_mb + 800 <= limit_mb


def test_every_setting_the_deployments_set_exists() -> None:
    known = _setting_names()
    container = _container()
    named = set(_only("ConfigMap")["data"]) | {
        e["name"] for e in container["env"] if e["name"].startswith("SANDLOT_")
    }
    for service in _compose()["services"].values():
        named |= {n for n in service.get("environment", {}) if n.startswith("SANDLOT_")}
    lb = {"SANDLOT_LB_BIND", "SANDLOT_LB_STATS_BIND", "SANDLOT_LB_SERVICE", "SANDLOT_LB_REPLICAS"}
    assert named - lb <= known, named - lb - known
    # And the ones compose's command exports.
    command = " ".join(_compose()["services"]["sandlot"]["command"])
    assert set(re.findall(r"\b(SANDLOT_\w+)=", command)) <= known


def _k8s_environment(secret: dict[str, str]) -> dict[str, str]:
    """What a pod's process sees: the Dockerfile's ENV, the ConfigMap, the Deployment's env."""
    env, _, _ = _dockerfile()
    env = {**env, **_only("ConfigMap")["data"]}
    keys = {**_only("Secret")["stringData"], **secret}
    for item in _container()["env"]:
        source = item.get("valueFrom", {})
        if "value" in item:
            env[item["name"]] = re.sub(r"\$\((\w+)\)", lambda m: env[m.group(1)], item["value"])
        elif "secretKeyRef" in source:
            ref = source["secretKeyRef"]
            assert ref["name"] == _only("Secret")["metadata"]["name"]
            env[item["name"]] = keys[ref["key"]]
        elif source.get("fieldRef", {}).get("fieldPath") == "status.podIP":
            env[item["name"]] = "10.0.3.7"
        elif source.get("fieldRef", {}).get("fieldPath") == "metadata.name":
            env[item["name"]] = "sandlot-7d9f-x2x4k"
        else:
            raise AssertionError(f"unexpected env source {item}")
    return env


def _settings_from(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    for name in [n for n in __import__("os").environ if n.startswith("SANDLOT_")]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return Settings()


def test_the_manifests_start_a_production_replica_once_the_secret_is_filled_in(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    filled = {
        "admin-key": GOOD_SECRETS["SANDLOT_ADMIN_KEY"],
        "secrets-key": GOOD_SECRETS["SANDLOT_SECRETS_KEY"],
    }
    settings = _settings_from(_k8s_environment(filled), monkeypatch)
    assert settings.environment == "production" and not settings.build_on_start
    assert settings.database.startswith("postgresql+psycopg://")
    assert settings.replica_name == "sandlot-7d9f-x2x4k"
    assert str(settings.data_dir) == "/var/lib/sandlot/data"


@pytest.mark.parametrize("key", ["admin-key", "secrets-key"])
def test_a_placeholder_left_in_the_secret_stops_start_up(
    monkeypatch: pytest.MonkeyPatch, key: str
) -> None:
    filled = {
        "admin-key": GOOD_SECRETS["SANDLOT_ADMIN_KEY"],
        "secrets-key": GOOD_SECRETS["SANDLOT_SECRETS_KEY"],
    }
    del filled[key]
    variable = {"admin-key": "SANDLOT_ADMIN_KEY", "secrets-key": "SANDLOT_SECRETS_KEY"}[key]
    with pytest.raises(ValidationError, match=variable):
        _settings_from(_k8s_environment(filled), monkeypatch)


def test_compose_starts_production_replicas_from_the_env_file(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    example = dict(
        line.split("=", 1)
        for line in (DEPLOY / "env.example").read_text().splitlines()
        if line and not line.startswith("#")
    )
    assert {n for n, v in example.items() if not v} == set(GOOD_SECRETS)
    dotenv = {**example, **GOOD_SECRETS}
    service = _compose()["services"]["sandlot"]
    env, _, _ = _dockerfile()
    env |= {k: _interpolate(str(v), dotenv) for k, v in service["environment"].items()}
    settings = _settings_from(env, monkeypatch)
    assert settings.database == "postgresql+psycopg://sandlot:pw@postgres:5432/sandlot"
    assert settings.redis_url == "redis://redis:6379/0"
    # Unfilled, compose refuses to start and says which variable.
    with pytest.raises(AssertionError, match="SANDLOT_ADMIN_KEY"):
        _interpolate(service["environment"]["SANDLOT_ADMIN_KEY"], example)
    assert service["expose"] == [env["SANDLOT_PORT"]]
    # The same sizing as the Kubernetes pod: every run slot fits under the memory limit.
    slots = settings.pool_size * settings.runs_per_worker
    limit_mb = int(service["deploy"]["resources"]["limits"]["memory"].removesuffix("g")) * 1024
    assert slots * settings.default_memory_mb + 800 <= limit_mb
    # The drain finishes before compose's stop gives up, and the replica serves until
    # HAProxy's checks (two, 1 s and 250 ms apart) have taken it out.
    grace = int(service["stop_grace_period"].removesuffix("s"))
    assert grace * 1000 > settings.drain_delay_ms + settings.drain_timeout_ms + 5000
    assert settings.drain_delay_ms >= 2000
    # HAProxy reaches the replicas on the Dockerfile's port.
    lb = _compose()["services"]["lb"]
    assert lb["environment"]["SANDLOT_LB_SERVICE"] == f"sandlot:{env['SANDLOT_PORT']}"
    assert "./haproxy.cfg:/usr/local/etc/haproxy/haproxy.cfg:ro" in lb["volumes"]


def test_selectors_names_and_references_agree() -> None:
    deployment = _only("Deployment")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    selected = deployment["spec"]["selector"]["matchLabels"]
    assert selected.items() <= labels.items()
    assert _only("Service")["spec"]["selector"].items() <= labels.items()
    assert _only("PodDisruptionBudget")["spec"]["selector"]["matchLabels"].items() <= labels.items()
    target = _only("HorizontalPodAutoscaler")["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", deployment["metadata"]["name"])
    ports = {p["name"] for p in _container()["ports"]}
    assert {p["targetPort"] for p in _only("Service")["spec"]["ports"]} <= ports
    refs = {r["configMapRef"]["name"] for r in _container()["envFrom"]}
    assert refs == {_only("ConfigMap")["metadata"]["name"]}
    secret_keys = set(_only("Secret")["stringData"])
    used = {
        e["valueFrom"]["secretKeyRef"]["key"]
        for e in _container()["env"]
        if "secretKeyRef" in e.get("valueFrom", {})
    }
    assert used == secret_keys


def test_the_autoscaler_scales_on_cpu_and_a_metric_the_service_exports() -> None:
    metrics = _only("HorizontalPodAutoscaler")["spec"]["metrics"]
    by_type = {m["type"]: m for m in metrics}
    assert by_type["Resource"]["resource"]["name"] == "cpu"
    name = by_type["Pods"]["pods"]["metric"]["name"]
    exported = {family.name for family in Metrics(max_namespaces=1).registry.collect()}
    assert name in exported
    spec = _only("HorizontalPodAutoscaler")["spec"]
    assert spec["minReplicas"] >= 3
    # Scaling out happens before every run slot of a replica is taken.
    settings = _only("ConfigMap")["data"]
    slots = int(settings["SANDLOT_POOL_SIZE"]) * int(settings["SANDLOT_RUNS_PER_WORKER"])
    assert float(by_type["Pods"]["pods"]["target"]["averageValue"]) < slots


def test_the_grace_period_covers_the_drain() -> None:
    pod = _only("Deployment")["spec"]["template"]["spec"]
    settings = _only("ConfigMap")["data"]
    delay_s = int(settings["SANDLOT_DRAIN_DELAY_MS"]) / 1000
    drain_s = int(settings["SANDLOT_DRAIN_TIMEOUT_MS"]) / 1000
    # Endpoints are removed within seconds of SIGTERM: the pod keeps serving meanwhile.
    assert delay_s >= 5
    # uvicorn's own graceful shutdown (app/__main__.py) takes up to 5 s after the drain.
    assert pod["terminationGracePeriodSeconds"] > delay_s + drain_s + 5
    assert _only("PodDisruptionBudget")["spec"]["maxUnavailable"] == 1


def test_docker_compose_accepts_the_compose_file(tmp_path: Path) -> None:
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("docker is not installed")
    probe = subprocess.run([docker, "compose", "version"], capture_output=True, timeout=30)
    if probe.returncode != 0:
        pytest.skip("docker compose is not installed")
    env_file = tmp_path / "env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in GOOD_SECRETS.items()))
    checked = subprocess.run(
        [
            docker,
            "compose",
            "-f",
            str(DEPLOY / "compose.yaml"),
            "--env-file",
            str(env_file),
            "config",
            "--quiet",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert checked.returncode == 0, checked.stderr
