"""Which window prompts are embedded, and load shedding.

Every reference prompt is embedded. A window prompt is embedded when its *embedding draw* — a hash
of its request id, salted so that the sample is independent of the canary split (which hashes the
bare id, ``ids.request_bucket``) — falls below the current share: ``embed_max_per_window /
window_size``, or ``shed_sample_rate`` while the consumer is ``shed_lag`` records or more behind,
whichever is lower. The draw depends on neither the prompt nor the record's place in the window or
the batch, so the embedded prompts are a uniform sample of the window's (the reference and the
window come from the same population, and drift that starts mid-window is sampled like the rest),
and a replayed batch embeds the same prompts."""

from __future__ import annotations

import math
from typing import Any

from driftloop.core import ids
from driftloop.monitor.settings import MonitorSettings

_SALT = "driftloop-monitor-embedding:"


def embedding_draw(request_id: str) -> float:
    """A request's place in [0, 1) for the embedding sample (the same in every process and replay)."""
    return ids.request_bucket(_SALT + request_id)


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
    """The share of window prompts embedded, from the embedding bound and the lag measured every
    ``lag_interval_s`` (monotonic seconds)."""

    def __init__(self, s: MonitorSettings) -> None:
        self.s = s
        self.bound = s.embed_max_per_window / s.window_size
        self.share = self.bound
        self._measured_at = -math.inf

    def due(self, now: float) -> bool:
        if now - self._measured_at < self.s.lag_interval_s:
            return False
        self._measured_at = now
        return True

    def update(self, total_lag: int) -> float:
        self.share = self.bound if total_lag < self.s.shed_lag else min(self.bound, self.s.shed_sample_rate)
        return self.share
