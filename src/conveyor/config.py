"""One settings object, read from CONVEYOR_* environment variables; CLI flags override fields."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr
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

    # circuit breakers, per job type in each worker (conveyor.worker.breaker)
    breaker_enabled: bool = True
    breaker_failure_rate: float = Field(default=0.5, gt=0, le=1)
    breaker_min_calls: int = Field(default=10, ge=1)
    breaker_window: float = Field(default=60.0, gt=0)  # seconds of recent outcomes
    breaker_open_seconds: float = Field(default=30.0, gt=0)  # before a half-open probe

    # submits: under concurrent load, wait at most this long (and at most one round trip) for
    # company before writing a batch (group commit; see conveyor.service.coalesce). A lone
    # submit is never delayed.
    submit_linger: float = Field(default=0.005, ge=0, le=0.1)

    # limits
    max_payload_bytes: int = Field(default=256 * 1024, gt=0)
    max_timeout: float = Field(default=7 * 86_400.0, gt=0)

    # HTTP API
    api_max_body_bytes: int = Field(default=1024 * 1024, gt=0)
    api_max_wait: float = Field(default=30.0, ge=0)  # cap on GET /v1/jobs/{id}?wait=
    api_wait_interval: float = Field(default=0.1, gt=0)  # how often a long-poll re-reads the job

    # gRPC (conveyor.grpc): `conveyor server` serves it beside HTTP; 0 turns it off.
    grpc_port: int = Field(default=50051, ge=0, le=65535)
    grpc_max_message_bytes: int = Field(default=4 * 1024 * 1024, gt=0)  # per request received
    grpc_fetch_wait: float = Field(default=5.0, ge=0, le=30)  # remote workers' long-poll

    # auth (conveyor.security). Off only when asked: `conveyor server` refuses to start with auth
    # on and no signing key, and never invents one.
    auth_enabled: bool = True
    jwt_algorithm: Literal["HS256", "RS256", "ES256"] = "HS256"
    jwt_secret: SecretStr | None = None  # HS256: at least 32 bytes
    jwt_private_key: SecretStr | None = None  # RS256/ES256: PEM text, or a path to a PEM file
    jwt_public_key: str | None = None  # PEM text or path; derived from the private key if unset
    access_token_ttl: float = Field(default=900.0, gt=0)  # seconds
    refresh_token_ttl: float = Field(default=7 * 86_400.0, gt=0)
    api_token_ttl_days: float = Field(default=365.0, gt=0)
    api_token_cache_seconds: float = Field(default=2.0, ge=0)  # revocation lookups, per process

    # transport (conveyor.transport): how ready jobs reach workers. "store": workers claim
    # from the store; "redis": ready ids travel through Redis at redis_url, the store stays the
    # truth (README, "The Redis transport"); "kafka": ready ids travel through topics per queue
    # and priority band (README, "The Kafka transport"). Every process reads it; they may
    # disagree without losing a job, but a Kafka deployment wants it on every process: a
    # leading relay in a process on another transport publishes events without dispatching,
    # and Kafka workers then find those jobs only through their store fallback.
    transport: Literal["store", "redis", "kafka"] = "store"
    transport_key_prefix: str = "conveyor"
    transport_sweep_limit: int = Field(default=1000, ge=1, le=100_000)  # per queue and sweep
    # An id a worker took from Redis goes back to ready if its claim is not acknowledged by
    # then (the worker died in between); a live worker acknowledges within milliseconds.
    redis_claim_deadline: float = Field(default=10.0, gt=0)

    # rate limits ("N/second", "N/minute"...; the `limits` library's notation), sliding window
    redis_url: str | None = None  # shared limits across servers; in-process memory when unset
    rate_limit_enabled: bool = True
    rate_limit_admin: str = "1000/second"
    rate_limit_user: str = "100/second"
    rate_limit_worker: str = "1000/second"
    rate_limit_anonymous: str = "20/second"  # per client IP, before login
    rate_limit_fail_open: bool = True  # Redis down: let requests through (True) or answer 503
    rate_limit_key_prefix: str = "conveyor"
    # Failed logins per (username, client address): after login_max_failures in a row, that
    # address waits 1, 2, 4 ... s before its next try, at most login_lockout_seconds.
    login_max_failures: int = Field(default=5, ge=1)
    login_lockout_seconds: float = Field(default=300.0, gt=0)

    # metrics (conveyor.metrics): queue depth and live workers are read from the store this
    # often by each API process; a worker counts as alive if heard from within the window.
    metrics_refresh_interval: float = Field(default=5.0, gt=0)
    metrics_worker_alive_seconds: float = Field(default=60.0, gt=0)
    metrics_token: SecretStr | None = None  # set: GET /metrics needs "Bearer <token>"

    # compatibility surfaces (conveyor.api.compat, docs/migrating.md). Anonymous callers of
    # those routes act as this principal: "user:TENANT" or "admin" (off when unset; a warning
    # is logged at start-up when on). Metric aliases: also export platform B's metric names.
    compat_anonymous: str | None = None
    compat_metric_aliases: bool = False
    # Kafka (issue 15). A bootstrap set: every transition writes an outbox row and a relay
    # (conveyor.transport.relay) publishes it as a CloudEvent; every process that changes jobs
    # (server, worker, scheduler) must see the same setting. Unset: no outbox writes at all.
    kafka_bootstrap: str | None = None  # host:port[,host:port...]
    kafka_topic_prefix: str = Field(default="conveyor", pattern=r"^[A-Za-z0-9._-]{1,100}$")
    kafka_partitions: int = Field(default=3, ge=1, le=10_000)  # for the topics Conveyor creates
    kafka_replication: int = Field(default=1, ge=1, le=100)
    # Passed through to the client (aiokafka): TLS and SASL.
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_cafile: str | None = None
    kafka_ssl_certfile: str | None = None
    kafka_ssl_keyfile: str | None = None
    kafka_request_timeout: float = Field(default=15.0, gt=0)  # a publish not acked by then fails
    relay_interval: float = Field(default=0.05, gt=0)  # how often an idle relay looks again
    relay_batch: int = Field(default=1000, ge=1, le=100_000)  # outbox rows per publish round
    # The Kafka transport (transport=kafka): workers' consumer group (default
    # "<prefix>.workers"), its liveness timings, and how long a job may sit queued in the store
    # before the sweep dispatches it again (its message was lost: a broker that restarted empty).
    kafka_group: str | None = None
    kafka_session_timeout: float = Field(default=10.0, gt=0)
    kafka_heartbeat_interval: float = Field(default=3.0, gt=0)
    kafka_redispatch_after: float = Field(default=30.0, gt=0)
    # How long the broker may hold an idle worker's fetch: the dispatch latency it adds at
    # most, against one fetch request per worker per this interval while idle.
    kafka_fetch_max_wait: float = Field(default=0.05, gt=0, le=10)

    @property
    def publishes_events(self) -> bool:
        """Transitions write outbox rows for the relay (a Kafka bootstrap is configured)."""
        return bool(self.kafka_bootstrap)

    # logging
    log_level: str = "INFO"
    log_format: str = "json"  # json | console
