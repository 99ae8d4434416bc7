"""Shared core: contracts codec, Kafka client layer, topics, settings base."""
