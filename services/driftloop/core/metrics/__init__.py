"""Every Prometheus metric the project exports, declared in this package (one module per service).

Names carry the ``driftloop_`` prefix and base units (seconds, bytes); counters end in ``_total``;
labels are bounded (service, model, adapter alias/version, detector, stream, status) and never
carry request or user ids. Each service builds its own set on its own registry, so a process
exports only its metrics and tests can use fresh registries.
"""

from __future__ import annotations

from driftloop.core.metrics._common import LATENCY_BUCKETS
from driftloop.core.metrics.events import EventMetrics
from driftloop.core.metrics.inference import InferenceMetrics
from driftloop.core.metrics.monitor import MonitorMetrics
from driftloop.core.metrics.retrainer import TRIGGER_RESULTS, RetrainerMetrics

__all__ = ["LATENCY_BUCKETS", "TRIGGER_RESULTS", "EventMetrics", "InferenceMetrics", "MonitorMetrics",
           "RetrainerMetrics"]
