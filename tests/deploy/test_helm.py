"""deploy/helm/conveyor. Its values files (values.yaml with each ci/*-values.yaml over it)
match values.schema.json, which Helm itself enforces. With a `helm` binary (GitHub CI installs
one; no registry this machine reaches ships it), `helm lint` and `helm template` run for every
values file and the output is checked as the Kustomize base is (tests/deploy/manifests.py)."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from tests.deploy import manifests
from tests.deploy.tools import DEPLOY, run

CHART = DEPLOY / "helm" / "conveyor"
VALUES_FILES = sorted((CHART / "ci").glob("*-values.yaml"))
CASES = [None, *VALUES_FILES]
IDS = ["defaults", *(p.name.removesuffix("-values.yaml") for p in VALUES_FILES)]


def merged(values_file: Path | None) -> dict[str, Any]:
    """values.yaml with a values file over it, as Helm merges them (maps deep, rest replaced)."""

    def merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
        out = dict(a)
        for k, v in b.items():
            out[k] = merge(a[k], v) if isinstance(v, dict) and isinstance(a.get(k), dict) else v
        return out

    values: dict[str, Any] = yaml.safe_load((CHART / "values.yaml").read_text())
    return merge(values, yaml.safe_load(values_file.read_text())) if values_file else values


def schema() -> dict[str, Any]:
    return json.loads((CHART / "values.schema.json").read_text())  # type: ignore[no-any-return]


@pytest.mark.parametrize("values_file", CASES, ids=IDS)
def test_values_match_the_charts_schema(values_file: Path | None) -> None:
    jsonschema.Draft7Validator(schema()).validate(merged(values_file))


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("config", "transport"), "rabbitmq"),
        (("worker", "app"), "no-colon"),
        (("secrets", "jwtSecret"), "too-short"),
        (("server", "autoscaling", "targetCPUUtilizationPercentage"), 170),
        (("worker", "graec"), 30),
    ],
)
def test_the_schema_refuses_bad_values(path: tuple[str, ...], value: Any) -> None:
    values = merged(None)
    node = values
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft7Validator(schema()).validate(values)


def helm() -> str:
    beside = Path(sys.executable).parent / "helm"
    found = str(beside) if beside.exists() else shutil.which("helm")
    if found is None:
        reason = "no helm binary (no package registry this machine reaches ships one)"
        if os.environ.get("CONVEYOR_REQUIRE_HELM"):
            pytest.fail(f"{reason}; CONVEYOR_REQUIRE_HELM is set", pytrace=False)
        pytest.skip(reason)
    return found


def values_args(values_file: Path | None) -> list[str]:
    return ["--values", str(values_file)] if values_file else []


@pytest.mark.parametrize("values_file", CASES, ids=IDS)
def test_helm_lint(values_file: Path | None) -> None:
    done = run(helm(), "lint", "--strict", str(CHART), *values_args(values_file))
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("values_file", CASES, ids=IDS)
def test_helm_template_is_valid_and_keeps_its_promises(values_file: Path | None) -> None:
    done = run(
        helm(), "template", "conveyor", str(CHART), "--namespace", "jobs",
        *values_args(values_file),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    docs = manifests.documents(done.stdout)
    values = merged(values_file)
    manifests.check_promises(docs, migration=values["migration"]["enabled"])
    if values["server"]["autoscaling"]["enabled"] and values["worker"]["autoscaling"]["enabled"]:
        keda = values["worker"]["autoscaling"]["keda"]["enabled"]
        manifests.check_worker_autoscaling(docs, keda=keda)
    env = manifests.config_env(docs)
    assert env["CONVEYOR_TRANSPORT"] == values["config"]["transport"]
    hooks = {
        d["kind"]: d["metadata"]["annotations"]["helm.sh/hook"]
        for d in docs
        if "helm.sh/hook" in d["metadata"].get("annotations", {})
    }
    if values["migration"]["enabled"]:
        assert hooks["Job"] == "pre-install,pre-upgrade"
    if not values["secrets"]["existingSecret"]:
        assert hooks["Secret"] == "pre-install,pre-upgrade"  # the migration hook needs it
