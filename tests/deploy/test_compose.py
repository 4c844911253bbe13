"""deploy/compose: valid against the Compose Specification's JSON schema once .env is
interpolated (as `docker compose config` does), and shaped so `up` converges: every service
waits on what it needs, long-running ones have health checks, workers scale."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from tests.deploy.tools import DEPLOY, cluster_module

COMPOSE = DEPLOY / "compose"
SCHEMA = Path(__file__).parent / "schemas" / "compose-spec.json"
_VAR = re.compile(r"\$\{([A-Z0-9_]+)(?:(:?[-?])([^}]*))?\}")


def dotenv(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, value = line.partition("=")
            values[name.strip()] = value.strip()
    return values


def interpolate(node: Any, env: dict[str, str]) -> Any:
    """Compose's ${VAR}, ${VAR:-default} and ${VAR:?error} on every string; an unset
    variable without a default is an error here, as `docker compose` makes it one."""
    if isinstance(node, dict):
        return {k: interpolate(v, env) for k, v in node.items()}
    if isinstance(node, list):
        return [interpolate(v, env) for v in node]
    if not isinstance(node, str):
        return node

    def value(m: re.Match[str]) -> str:
        name, op, arg = m.groups()
        if env.get(name):
            return env[name]
        if op and op.endswith("-"):
            return arg
        raise AssertionError(f"${{{name}}} is not set in .env and has no default")

    return _VAR.sub(value, node)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    raw = yaml.safe_load((COMPOSE / "docker-compose.yml").read_text())
    return interpolate(raw, dotenv(COMPOSE / ".env"))  # type: ignore[no-any-return]


def test_valid_against_the_compose_specification(compose: dict[str, Any]) -> None:
    schema = json.loads(SCHEMA.read_text())
    errors = sorted(
        jsonschema.Draft7Validator(schema).iter_errors(compose), key=lambda e: list(e.path)
    )
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors)


def test_the_schema_catches_a_mistake(compose: dict[str, Any]) -> None:
    broken = {**compose, "services": {**compose["services"], "worker": {"image": 3, "bogus": 1}}}
    assert list(jsonschema.Draft7Validator(json.loads(SCHEMA.read_text())).iter_errors(broken))


def test_the_topology_of_the_issue(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert {
        "postgres",
        "redis",
        "kafka",
        "migrate",
        "server-1",
        "server-2",
        "nginx",
        "worker",
        "scheduler",
        "prometheus",
        "grafana",
    } <= set(services)
    assert services["scheduler"]["deploy"]["replicas"] == 2
    assert "KRaft" in (COMPOSE / "docker-compose.yml").read_text()
    assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"
    for name in ("server-1", "server-2", "worker", "scheduler"):
        env = services[name]["environment"]
        assert env["CONVEYOR_TRANSPORT"] == "store"
        assert env["CONVEYOR_REDIS_URL"].startswith("redis://redis:")
        assert env["CONVEYOR_KAFKA_BOOTSTRAP"] == "kafka:9092"


def test_up_converges(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name, service in services.items():
        for dep, cond in service.get("depends_on", {}).items():
            assert dep in services, f"{name} depends on unknown {dep}"
            wanted = "service_completed_successfully" if dep == "migrate" else "service_healthy"
            assert cond["condition"] == wanted, (name, dep)
            if wanted == "service_healthy":
                # Conveyor's own image (built here) has a HEALTHCHECK of its own.
                assert "healthcheck" in services[dep] or "build" in services[dep], dep
        if name != "migrate":
            assert service["restart"] == "unless-stopped", name
    for name in ("server-1", "server-2", "worker", "scheduler"):
        assert services[name]["depends_on"]["migrate"]["condition"] == (
            "service_completed_successfully"
        )
    assert services["migrate"]["restart"] == "no"


def test_workers_scale_and_stop_gracefully(compose: dict[str, Any]) -> None:
    worker = compose["services"]["worker"]
    assert "container_name" not in worker and "ports" not in worker  # --scale worker=N
    grace = next(int(a.split("=")[1]) for a in worker["command"] if a.startswith("--grace="))
    assert int(worker["stop_grace_period"].removesuffix("s")) > grace


def test_mounted_files_exist_and_scrape_targets_resolve(compose: dict[str, Any]) -> None:
    for service in compose["services"].values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (COMPOSE / source).exists(), source
    prometheus = (DEPLOY / "prometheus" / "prometheus.yml").read_text()
    targets = set(re.findall(r'"([a-z-]+):\d+"', prometheus))
    aliases = {
        alias
        for service in compose["services"].values()
        for alias in service.get("networks", {}).get("default", {}).get("aliases", [])
    }
    assert targets <= aliases, targets - aliases


def test_the_gateway_gets_a_value_for_every_placeholder(compose: dict[str, Any]) -> None:
    nginx = compose["services"]["nginx"]
    mounts = dict(v.split(":")[:2] for v in nginx["volumes"])
    assert mounts["../nginx/templates"] == "/etc/nginx/templates"
    assert mounts["../nginx/conveyor"] == "/etc/nginx/conveyor"  # the includes' relative path
    for template in (DEPLOY / "nginx" / "templates").glob("*.template"):
        rendered = cluster_module.render(template.read_text(), nginx["environment"])
        for include in re.findall(r"include (conveyor/\S+);", rendered):
            assert (DEPLOY / "nginx" / include).exists(), include
