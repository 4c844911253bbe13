"""Delayed promotion, lease reaping, cron and retention."""
