"""The inference service's metrics."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info
from prometheus_client.metrics import MetricWrapperBase

from driftloop.core.metrics._common import LATENCY_BUCKETS
from driftloop.core.metrics.events import EventMetrics


class InferenceMetrics:
    def __init__(self, registry: CollectorRegistry, model: str) -> None:
        self.registry = registry
        self.model = model
        # The four request metrics carry the adapter version that served the request (immutable; "": the
        # base model, or a request refused before routing), so canary and stable compare from Prometheus
        # alone. Recorded through served_by(); keep_versions() removes an unloaded version's series.
        self.requests = Counter(
            "driftloop_inference_requests_total", "Generation requests by method (Generate: answered once; "
            "GenerateStream: streamed), adapter alias and the version that served it, status code (gRPC's "
            "name, whatever the transport) and transport (grpc, http: the OpenAI-compatible listener).",
            ["method", "model", "adapter_alias", "adapter_version", "code", "transport"], registry=registry,
        )
        self.latency = Histogram(
            "driftloop_inference_request_duration_seconds", "End-to-end latency of successful generation "
            "requests, by adapter version.",
            ["method", "model", "adapter_alias", "adapter_version", "transport"], buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.ttft = Histogram(
            "driftloop_inference_time_to_first_token_seconds", "Time to the first generated token of a "
            "streamed request, by adapter version (a unary call answers once: its latency is request_duration).",
            ["model", "adapter_alias", "adapter_version"], buckets=LATENCY_BUCKETS, registry=registry,
        )
        self.tokens = Counter(
            "driftloop_inference_tokens_total", "Tokens processed, by adapter version and kind (prompt, "
            "completion).",
            ["model", "adapter_alias", "adapter_version", "kind"], registry=registry,
        )
        self._served: dict[tuple[str, str], ServedBy] = {}  # what served_by() made, by (alias, version)
        self.in_flight = Gauge(
            "driftloop_inference_in_flight_requests", "Generation requests being served.",
            ["model"], registry=registry,
        ).labels(model)
        self.adapter_version = Gauge(
            "driftloop_inference_adapter_version_info",
            "1 for each loaded adapter version; role is stable, canary, draining or loaded.",
            ["adapter_alias", "version", "role"], registry=registry,
        )
        self.canary_weight = Gauge(
            "driftloop_inference_canary_weight", "Share of the alias's traffic routed to its canary.",
            ["adapter_alias"], registry=registry,
        )
        self.adapter_rejections = Counter(
            "driftloop_inference_adapter_rejections_total", "Adapters refused by validation before load.",
            ["reason"], registry=registry,
        )
        self.feedback = Counter(
            "driftloop_inference_feedback_total", "Feedback received, by rating.",
            ["rating"], registry=registry,
        )
        self.rollouts_applied = Counter(
            "driftloop_inference_rollouts_applied_total", "Adapter rollout records applied from Kafka, by result.",
            ["result"], registry=registry,
        )
        self.unexpected_errors = Counter(
            "driftloop_inference_unexpected_errors_total", "RPCs that failed on an error no rule foresaw (a "
            "bug: answered INTERNAL and logged with its traceback), by method.", ["method"], registry=registry,
        )
        self.info = Info("driftloop_inference_engine", "Engine and base model served.", registry=registry)
        self.events = EventMetrics(registry, "inference")

    # -- the per-version request metrics --------------------------------------------------------------
    def served_by(self, alias: str, version: str) -> ServedBy:
        """The request metrics of what ``alias@version`` served (``version`` "": the base model, or a
        request refused before routing). Event loop only, like the adapter registry."""
        served = self._served.get((alias, version))
        if served is None:
            served = self._served[(alias, version)] = ServedBy(self, alias, version)
        return served

    def keep_versions(self, loaded: Iterable[tuple[str, str]]) -> None:
        """Remove the series of every adapter version not in ``loaded`` ((alias, version) pairs), so the
        ``adapter_version`` label only holds versions that are loaded; the base model's stay."""
        keep = set(loaded)
        for key in [k for k in self._served if k[1] and k not in keep]:
            self._served.pop(key).remove()


class ServedBy:
    """The children of the request metrics for one (alias, version), each made once and remembered,
    so that they can all be removed when the version is unloaded."""

    def __init__(self, m: InferenceMetrics, alias: str, version: str) -> None:
        self._m = m
        self.alias = alias
        self.version = version
        self._children: dict[tuple[MetricWrapperBase, tuple[str, ...]], Any] = {}

    def _child(self, metric: MetricWrapperBase, *values: str) -> Any:  # the metric's own type
        key = (metric, values)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*values)
        return child

    def requests(self, method: str, code: str, transport: str) -> Counter:
        return self._child(self._m.requests, method, self._m.model, self.alias, self.version, code, transport)

    def latency(self, method: str, transport: str) -> Histogram:
        return self._child(self._m.latency, method, self._m.model, self.alias, self.version, transport)

    def ttft(self) -> Histogram:
        return self._child(self._m.ttft, self._m.model, self.alias, self.version)

    def tokens(self, kind: str) -> Counter:
        return self._child(self._m.tokens, self._m.model, self.alias, self.version, kind)

    def remove(self) -> None:
        for metric, values in self._children:
            metric.remove(*values)
        self._children.clear()
