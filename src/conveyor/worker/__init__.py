"""Running handlers: registry, executor, leases and heartbeats, graceful shutdown."""

from conveyor.worker.context import JobContext
from conveyor.worker.executor import Worker
from conveyor.worker.registry import JobDefinition, Registry

__all__ = ["JobContext", "JobDefinition", "Registry", "Worker"]
