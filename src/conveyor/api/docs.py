"""The API's documentation: OpenAPI fragments shared by the routes (every operation documents
its problem responses) and the Swagger UI page at /docs, whose assets are served from here."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import fastapi_offline
from fastapi import Depends, FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.staticfiles import StaticFiles

from conveyor.api.auth import public
from conveyor.api.errors import PROBLEM_JSON

DOCS_URL = "/docs"
ASSETS_URL = "/docs-assets"
# Swagger UI 5 (it renders OpenAPI 3.1, which FastAPI emits), as the fastapi-offline wheel ships
# it: FastAPI's own page loads these from a CDN, so /docs was blank on a machine without internet.
SWAGGER_ASSETS = Path(fastapi_offline.__file__).resolve().parent / "static"


def install_docs(app: FastAPI) -> None:
    """Serve /docs with Swagger UI from the installed package; the app is built with
    docs_url=None so FastAPI's CDN page is not registered."""
    app.mount(ASSETS_URL, StaticFiles(directory=SWAGGER_ASSETS), name="docs-assets")

    @app.get(DOCS_URL, include_in_schema=False, dependencies=[Depends(public)])
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=f"{app.title} API",
            swagger_js_url=f"{root}{ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{root}/ui/favicon.svg",
            # No spec validator badge: it would send the spec to validator.swagger.io.
            swagger_ui_parameters={"validatorUrl": None},
        )


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
