"""Local run tooling: a real Kafka broker for tests and the demo (no Docker needed)."""
