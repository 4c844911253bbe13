"""Delayed promotion, lease reaping, cron and retention."""

from conveyor.scheduler.scheduler import Scheduler, TickReport

__all__ = ["Scheduler", "TickReport"]
