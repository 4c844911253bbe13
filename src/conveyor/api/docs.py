"""OpenAPI fragments shared by the routes: every operation documents its problem responses."""

from __future__ import annotations

from typing import Any

from conveyor.api.errors import PROBLEM_JSON

_PROBLEM = {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The listed statuses plus 4XX/5XX catch-alls (413, 415, 503 can come from anywhere)."""
    out: dict[int | str, dict[str, Any]] = {
        s: {"description": _DESCRIPTIONS.get(s, "Error"), "content": _PROBLEM} for s in statuses
    }
    out["4XX"] = {"description": "Client error", "content": _PROBLEM}
    out["5XX"] = {"description": "Server error", "content": _PROBLEM}
    return out


def model(ref: str, description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}},
    }


_DESCRIPTIONS = {
    400: "Malformed request",
    404: "Not found",
    409: "Illegal transition",
    413: "Body too large",
    415: "Body is not JSON",
    422: "Invalid input",
    429: "Queue full; see Retry-After",
    503: "Store unavailable",
}
