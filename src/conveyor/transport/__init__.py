"""How what happens in the store reaches the outside: the Kafka relay of the outbox (lifecycle
events, the dead-letter topic) and the format of what it publishes. The store stays the truth:
everything here can be lost and is published again from the outbox."""
