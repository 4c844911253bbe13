"""One settings object, read from CONVEYOR_* environment variables; CLI flags override fields."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_STORE_URL = "sqlite:///conveyor-data/conveyor.db"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CONVEYOR_", extra="ignore")

    store_url: str = DEFAULT_STORE_URL

    # worker
    concurrency: int = Field(default=20, ge=1, le=10_000)
    lease_seconds: float = Field(default=30.0, gt=0)
    heartbeat_interval: float = Field(default=10.0, gt=0)
    poll_interval: float = Field(default=1.0, gt=0)
    maintenance_interval: float = Field(default=1.0, gt=0)
    shutdown_grace: float = Field(default=30.0, ge=0)

    # scheduler
    scheduler_tick: float = Field(default=1.0, gt=0)
    leader_ttl: float = Field(default=15.0, gt=0)
    retention_completed: float = Field(default=86_400.0, ge=0)  # seconds
    retention_cancelled: float = Field(default=86_400.0, ge=0)
    retention_dead: float = Field(default=7 * 86_400.0, ge=0)
    worker_expiry: float = Field(default=300.0, gt=0)

    # retry policy
    retry_base: float = Field(default=1.0, gt=0)
    retry_cap: float = Field(default=3600.0, gt=0)

    # limits
    max_payload_bytes: int = Field(default=256 * 1024, gt=0)
    max_timeout: float = Field(default=7 * 86_400.0, gt=0)

    # HTTP API
    api_max_body_bytes: int = Field(default=1024 * 1024, gt=0)
    api_max_wait: float = Field(default=30.0, ge=0)  # cap on GET /v1/jobs/{id}?wait=
    api_wait_interval: float = Field(default=0.1, gt=0)  # how often a long-poll re-reads the job

    # logging
    log_level: str = "INFO"
    log_format: str = "json"  # json | console
