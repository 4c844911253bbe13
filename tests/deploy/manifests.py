"""Checks shared by the Kustomize base and the Helm chart's output: every object valid against
the Kubernetes schemas (kubernetes-validate, strict: unknown fields are errors) or, for KEDA's
ScaledObject, its CRD's schema; and the properties docs/deploy.md promises."""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import kubernetes_validate.utils
import yaml

from conveyor import metrics

# The oldest Kubernetes the chart supports (Chart.yaml kubeVersion) and the newest schemas.
VERSIONS = ("1.27", kubernetes_validate.latest_version())
KEDA_CRD = Path(__file__).parent / "schemas" / "keda.sh_scaledobjects.yaml"

# kubernetes-validate parses its (large) schema files again on every call; they never change.
kubernetes_validate.utils.schema_contents = cache(kubernetes_validate.utils.schema_contents)


def documents(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d]


def _closed(schema: Any) -> Any:
    """A CRD's schema with unknown fields refused, as the API server's strict field validation
    does (a CRD's structural schema prunes them; a typo would vanish silently)."""
    if isinstance(schema, dict):
        out = {k: _closed(v) for k, v in schema.items()}
        if "properties" in out and "additionalProperties" not in out:
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [_closed(v) for v in schema]
    return schema


@cache
def scaledobject_schema() -> dict[str, Any]:
    crd = yaml.safe_load(KEDA_CRD.read_text())
    version = next(v for v in crd["spec"]["versions"] if v["name"] == "v1alpha1")
    schema = copy.deepcopy(version["schema"]["openAPIV3Schema"])
    metadata = schema["properties"]["metadata"] = {"type": "object"}
    assert metadata
    return _closed(schema)  # type: ignore[no-any-return]


def validate(doc: dict[str, Any]) -> None:
    """Raises on an object the API server would refuse."""
    if doc["apiVersion"] == "keda.sh/v1alpha1" and doc["kind"] == "ScaledObject":
        jsonschema.validate(doc, scaledobject_schema())
        return
    for version in VERSIONS:
        kubernetes_validate.validate(doc, version, strict=True)


def by_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def containers(docs: list[dict[str, Any]]) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    for d in docs:
        if d["kind"] in ("Deployment", "Job"):
            pod = d["spec"]["template"]["spec"]
            for c in pod["containers"]:
                yield pod, c


def component(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    return next(
        d
        for d in docs
        if d["kind"] == kind
        and d["metadata"].get("labels", {}).get("app.kubernetes.io/component") == name
    )


def check_promises(docs: list[dict[str, Any]], *, migration: bool = True) -> None:
    """What every rendering of Conveyor on Kubernetes must be."""
    for d in docs:
        validate(d)
    for pod, c in containers(docs):
        sec, pod_sec = c["securityContext"], pod["securityContext"]
        assert pod_sec["runAsNonRoot"] and pod_sec["runAsUser"] != 0
        assert sec["readOnlyRootFilesystem"] and not sec["allowPrivilegeEscalation"]
        assert sec["capabilities"]["drop"] == ["ALL"]
        assert "limits" in c["resources"] and "requests" in c["resources"]
        assert pod["automountServiceAccountToken"] is False
    for name in ("server", "worker", "scheduler"):
        deployment = component(docs, "Deployment", name)
        c = deployment["spec"]["template"]["spec"]["containers"][0]
        assert c["args"][0] == name
        assert c["livenessProbe"]["httpGet"]["path"] == "/livez"
        assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
        pdb = component(docs, "PodDisruptionBudget", name)
        assert (
            pdb["spec"]["selector"]["matchLabels"]
            == (deployment["spec"]["selector"]["matchLabels"])
        )
    worker = component(docs, "Deployment", "worker")["spec"]["template"]["spec"]
    args = worker["containers"][0]["args"]
    grace = float(next(a.split("=", 1)[1] for a in args if a.startswith("--grace=")))
    assert worker["terminationGracePeriodSeconds"] > grace
    if migration:
        migrate = component(docs, "Job", "migrate")
        assert migrate["spec"]["template"]["spec"]["containers"][0]["args"] == ["migrate"]
    ingress = by_kind(docs, "Ingress")
    if ingress:
        bodies = {
            i["metadata"]["annotations"]["nginx.ingress.kubernetes.io/proxy-body-size"]
            for i in ingress.values()
        }
        assert "1m" in bodies  # the API's CONVEYOR_API_MAX_BODY_BYTES


def check_worker_autoscaling(docs: list[dict[str, Any]], *, keda: bool) -> None:
    """Workers scale on Conveyor's own queue metrics (names from conveyor.metrics)."""
    hpa = by_kind(docs, "HorizontalPodAutoscaler")
    scaled = by_kind(docs, "ScaledObject")
    worker = component(docs, "Deployment", "worker")["metadata"]["name"]
    server_hpa = next(h for h in hpa.values() if h["spec"]["scaleTargetRef"]["name"] != worker)
    assert server_hpa["spec"]["metrics"][0]["resource"]["name"] == "cpu"
    worker_hpas = [h for h in hpa.values() if h["spec"]["scaleTargetRef"]["name"] == worker]
    if keda:
        assert not worker_hpas  # KEDA makes and owns the HPA
        (so,) = scaled.values()
        assert so["spec"]["scaleTargetRef"]["name"] == worker
        queries = [t["metadata"]["query"] for t in so["spec"]["triggers"]]
        assert any(
            re.search(rf"\b{metrics.QUEUE_DEPTH}\{{[^}}]*status=\"queued\"", q) for q in queries
        ), queries
        wait = metrics.JOB_WAIT._name  # the histogram's name; buckets are <name>_bucket
        assert any(f"{wait}_bucket" in q for q in queries), queries
    else:
        assert not scaled
        (h,) = worker_hpas
        external = h["spec"]["metrics"][0]["external"]
        assert external["metric"]["name"] == metrics.QUEUE_DEPTH
        assert external["metric"]["selector"]["matchLabels"] == {"status": "queued"}


def config_env(docs: list[dict[str, Any]]) -> dict[str, str]:
    (config,) = by_kind(docs, "ConfigMap").values()
    return config["data"]  # type: ignore[no-any-return]
