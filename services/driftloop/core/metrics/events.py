"""The event pipeline's metrics (spool → Kafka), for any producing service."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


class EventMetrics:
    """The event pipeline (spool → Kafka) of any producing service."""

    def __init__(self, registry: CollectorRegistry, service: str) -> None:
        self.emitted = Counter(
            "driftloop_events_emitted_total", "Events acknowledged by Kafka (acks=all).",
            ["service", "topic"], registry=registry,
        )
        self.spooled_events = Gauge(
            "driftloop_events_spooled", "Events in the on-disk spool not yet acknowledged by Kafka.",
            ["service"], registry=registry,
        ).labels(service)
        self.spooled_bytes = Gauge(
            "driftloop_events_spool_bytes", "Bytes of events in the on-disk spool.",
            ["service"], registry=registry,
        ).labels(service)
        self.dropped = Counter(
            "driftloop_events_dropped_total", "Events dropped, by reason (spool_full: oldest dropped; shutdown: "
            "undelivered when a pod with an ephemeral spool stopped).",
            ["service", "reason"], registry=registry,
        )
        # Exported at 0 from the start: increase() (alert DriftloopEventsDropped, the dashboard)
        # sees the first drop, and "no drops" reads 0, not "no data".
        self.dropped.labels(service, "spool_full")
        self.dropped.labels(service, "shutdown")
        self.rejected = Counter(
            "driftloop_events_rejected_total", "Events Kafka refused for good (e.g. MessageSizeTooLargeError), "
            "moved out of the spool's head so the rest keeps flowing.", ["service", "reason"], registry=registry,
        )
        self.rejected.labels(service, "MessageSizeTooLargeError")  # at 0: the first rejection is an increase()
        self.set_aside = Gauge(
            "driftloop_events_set_aside", "Rejected events kept aside in the spool for inspection.",
            ["service"], registry=registry,
        ).labels(service)
        self.kafka_up = Gauge(
            "driftloop_kafka_up", "1 when the last Kafka delivery attempt succeeded.",
            ["service"], registry=registry,
        ).labels(service)
        self.service = service
