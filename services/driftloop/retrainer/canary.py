"""Canary vs stable on live signals: requests, errors and negative feedback per version of an alias,
read from Kafka since the canary started."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from driftloop.core.ids import NOT_TRAFFIC_SOURCES
from driftloop.core.settings import KafkaSettings
from driftloop.core.topics import FEEDBACK, PREDICTIONS
from driftloop.retrainer.collect import scan_events
from driftloop.retrainer.waiting import poll
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
    """Watches a canary until it has ``min_requests`` (or ``max_wait_s`` passed), then judges it
    against stable. A reading that fails (a broker hiccup) is not a verdict: the last one is kept."""

    def __init__(self, settings: KafkaSettings, min_requests: int, max_wait_s: float, max_negative_increase: float,
                 max_error_increase: float, poll_s: float, measure: Callable[[KafkaSettings, str, float],
                                                                             CanaryStats] = measure,
                 clock: Callable[[], float] = time.time, sleep: Callable[[float], None] = time.sleep) -> None:
        self.kafka = settings
        self.min_requests = min_requests
        self.max_wait_s = max_wait_s
        self.max_negative_increase = max_negative_increase
        self.max_error_increase = max_error_increase
        self.poll_s = poll_s
        self.measure = measure
        self.clock = clock
        self.sleep = sleep

    def __call__(self, alias: str, stable: str, canary: str) -> tuple[bool, str]:
        since = self.clock() - 1
        last = CanaryStats()

        def read() -> CanaryStats:
            nonlocal last
            try:
                last = self.measure(self.kafka, alias, since)
            except Exception as exc:  # keep the last reading, try again
                log.warning("canary %s/%s: reading live signals failed (%s: %s); retrying", alias, canary,
                            type(exc).__name__, str(exc)[:200])
            return last

        stats = poll(read, lambda st: self._of(st, canary).requests >= self.min_requests, self.max_wait_s,
                     self.poll_s, self.sleep)
        return self.verdict(self._of(stats, stable), self._of(stats, canary), stable, canary)

    @staticmethod
    def _of(stats: CanaryStats, version: str) -> VersionStats:
        return stats.by_version.get(version, VersionStats())

    def verdict(self, s: VersionStats, c: VersionStats, stable: str, canary: str) -> tuple[bool, str]:
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
