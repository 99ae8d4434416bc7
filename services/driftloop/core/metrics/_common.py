"""What every metric module shares: no ``_created`` series, the latency buckets."""

from __future__ import annotations

from prometheus_client import disable_created_metrics

# `_created` series double the scrape size and no dashboard or alert uses them.
disable_created_metrics()

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
