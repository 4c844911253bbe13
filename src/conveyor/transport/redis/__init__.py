"""The Redis transport: ready sets per queue in Redis in front of the store."""
