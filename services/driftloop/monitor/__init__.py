"""Monitor service: drift, feedback and error rates → Prometheus, and retrain triggers."""
