"""Load shedding: under a consumer backlog of ``shed_lag`` records or more, only a share
(``shed_sample_rate``) of window prompts is embedded, so the monitor catches up; the reference is
always embedded in full. Which prompts is decided by ``ids.request_bucket``, the same hash the
canary split uses, so the sample does not depend on arrival order."""

from __future__ import annotations

import math
from typing import Any

from driftloop.core import ids
from driftloop.monitor.settings import MonitorSettings


def consumer_lag(raw: Any) -> dict[str, int] | None:
    """Records behind the end, per topic, of a kafka-python consumer's assignment (None: unknown)."""
    parts = raw.assignment()
    if not parts:
        return None
    try:
        ends = raw.end_offsets(list(parts))
    except Exception:  # noqa: BLE001 - lag is best effort
        return None
    per_topic: dict[str, int] = {}
    for tp in parts:
        per_topic[tp.topic] = per_topic.get(tp.topic, 0) + max(0, ends.get(tp, 0) - raw.position(tp))
    return per_topic


class LoadShedder:
    """The embedding sample rate, from the lag measured every ``lag_interval_s`` (monotonic seconds)."""

    def __init__(self, s: MonitorSettings) -> None:
        self.s = s
        self.rate = 1.0
        self._measured_at = -math.inf

    def due(self, now: float) -> bool:
        if now - self._measured_at < self.s.lag_interval_s:
            return False
        self._measured_at = now
        return True

    def update(self, total_lag: int) -> float:
        self.rate = 1.0 if total_lag < self.s.shed_lag else self.s.shed_sample_rate
        return self.rate

    def sampled(self, request_id: str) -> bool:
        return self.rate >= 1.0 or ids.request_bucket(request_id) < self.rate
