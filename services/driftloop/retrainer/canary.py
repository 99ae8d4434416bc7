"""Canary vs stable on live signals: requests, errors and negative feedback per version of an alias,
read from Kafka since the canary started."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from driftloop.core.ids import NOT_TRAFFIC_SOURCES
from driftloop.core.settings import KafkaSettings
from driftloop.core.topics import FEEDBACK, PREDICTIONS
from driftloop.retrainer.collect import scan_events
from driftloop.v1 import events_pb2

log = logging.getLogger(__name__)


@dataclass
class VersionStats:
    requests: int = 0
    errors: int = 0
    feedback: int = 0
    negative: int = 0

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    @property
    def negative_rate(self) -> float:
        return self.negative / self.feedback if self.feedback else 0.0


@dataclass
class CanaryStats:
    by_version: dict[str, VersionStats] = field(default_factory=dict)


def counts(prediction: events_pb2.PredictionEvent, alias: str) -> bool:
    """Whether a prediction is evidence about the canary: live traffic the router assigned. Not the
    gate's or an evaluation's requests, not requests that pinned a version themselves (a client could
    otherwise decide the verdict), not failures the client caused."""
    return (prediction.adapter_alias == alias and not prediction.pinned
            and prediction.tags.get("source") not in NOT_TRAFFIC_SOURCES
            and prediction.error_source != events_pb2.ERROR_SOURCE_CLIENT)


def measure(settings: KafkaSettings, alias: str, since: float) -> CanaryStats:
    stats = CanaryStats()
    version_of: dict[str, str] = {}
    for p in scan_events(settings, PREDICTIONS, since, events_pb2.PredictionEvent):
        if not counts(p, alias) or p.request_id in version_of:
            continue
        s = stats.by_version.setdefault(p.adapter_version, VersionStats())
        s.requests += 1
        s.errors += int(bool(p.error_code))
        version_of[p.request_id] = p.adapter_version
    verdicts: dict[str, bool] = {}  # one verdict per request: the latest feedback
    for fb in scan_events(settings, FEEDBACK, since, events_pb2.FeedbackEvent):
        if fb.request_id in version_of:
            verdicts[fb.request_id] = fb.rating == events_pb2.RATING_NEGATIVE
    for request_id, negative in verdicts.items():
        s = stats.by_version[version_of[request_id]]
        s.feedback += 1
        s.negative += int(negative)
    return stats


class CanaryObserver:
    def __init__(self, settings: KafkaSettings, min_requests: int, max_wait_s: float, max_negative_increase: float,
                 max_error_increase: float = 0.02, poll_s: float = 3.0) -> None:
        self.kafka = settings
        self.min_requests = min_requests
        self.max_wait_s = max_wait_s
        self.max_negative_increase = max_negative_increase
        self.max_error_increase = max_error_increase
        self.poll_s = poll_s

    def __call__(self, alias: str, stable: str, canary: str) -> tuple[bool, str]:
        since = time.time() - 1
        deadline = time.monotonic() + self.max_wait_s
        stats = CanaryStats()
        while True:
            try:
                stats = measure(self.kafka, alias, since)
            except Exception as exc:  # a broker hiccup is not a verdict: keep the last reading, try again
                log.warning("canary %s/%s: reading live signals failed (%s: %s); retrying", alias, canary,
                            type(exc).__name__, str(exc)[:200])
            c = stats.by_version.get(canary, VersionStats())
            s = stats.by_version.get(stable, VersionStats())
            if c.requests >= self.min_requests or time.monotonic() >= deadline:
                break
            time.sleep(self.poll_s)
        detail = (f"canary {canary}: {c.requests} requests, errors {c.error_rate:.3f}, negative feedback "
                  f"{c.negative_rate:.3f} ({c.feedback}); stable {stable}: {s.requests} requests, errors "
                  f"{s.error_rate:.3f}, negative feedback {s.negative_rate:.3f} ({s.feedback})")
        if c.requests < self.min_requests:
            return False, f"not enough canary traffic within {self.max_wait_s:.0f}s: {detail}"
        if c.error_rate > s.error_rate + self.max_error_increase:
            return False, f"canary errors above stable: {detail}"
        if c.negative_rate > s.negative_rate + self.max_negative_increase:
            return False, f"canary negative feedback above stable: {detail}"
        return True, f"canary healthy: {detail}"
