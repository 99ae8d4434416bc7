"""The inference service's metrics."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

from driftloop.core.metrics._common import LATENCY_BUCKETS
from driftloop.core.metrics.events import EventMetrics


class InferenceMetrics:
    def __init__(self, registry: CollectorRegistry, model: str) -> None:
        self.registry = registry
        self.model = model
        self.requests = Counter(
            "driftloop_inference_requests_total", "Generation requests by method (Generate: answered once; "
            "GenerateStream: streamed), adapter alias, status code (gRPC's name, whatever the transport) and "
            "transport (grpc, http: the OpenAI-compatible listener).",
            ["method", "model", "adapter_alias", "code", "transport"], registry=registry,
        )
        self.latency = Histogram(
            "driftloop_inference_request_duration_seconds", "End-to-end latency of generation requests.",
            ["method", "model", "adapter_alias", "transport"], buckets=LATENCY_BUCKETS, registry=registry,
        )
        self.ttft = Histogram(
            "driftloop_inference_time_to_first_token_seconds", "Time to the first generated token of a "
            "streamed request (a unary call answers once: its latency is request_duration).",
            ["model", "adapter_alias"], buckets=LATENCY_BUCKETS, registry=registry,
        )
        self.tokens = Counter(
            "driftloop_inference_tokens_total", "Tokens processed, by kind (prompt, completion).",
            ["model", "adapter_alias", "kind"], registry=registry,
        )
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
