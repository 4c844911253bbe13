"""The HTTP API: a thin adapter over JobService (see app.create_app)."""

from conveyor.api.app import create_app

__all__ = ["create_app"]
