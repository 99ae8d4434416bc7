"""The trigger policy of a stream: at most one RetrainTrigger per episode.

A drift signal fires after ``sustained_windows`` consecutive drifted windows, a rate signal while
it is over its threshold (with ``min_samples``); only ``trigger_signals`` count. The first firing
window opens an episode; ``clear_windows`` quiet windows close it (hysteresis); ``cooldown_s``
separates two triggers of one stream.

**Rounds.** An episode remembers the stream's pre-change negative-feedback rate (the last one
measured with no episode open). When the version its trigger led to is promoted, the episode does
not simply end: it becomes a ``FollowUp``. While the new version's negative-feedback rate stays
above the pre-change rate + ``follow_up_margin`` for ``follow_up_windows`` windows, a follow-up
round is triggered (same episode window, so the retrainer reads every correction since the change;
the cooldown does not apply), at most ``max_rounds`` rounds in all; ``clear_windows`` windows back
under it end the episode ("back to normal"). One round is pending until the next promotion, or
for ``round_pending_s`` (a round the gate rejected for good): longer than a round's training,
gate and canary take, or a slow round would be raised again while it still runs.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from driftloop.monitor.settings import MonitorSettings
from driftloop.monitor.signals import DRIFT_SIGNALS, SignalState

if TYPE_CHECKING:
    from driftloop.monitor.streams import Stream


@dataclass
class Episode:
    """An open drift/quality episode and the evidence counted since it opened."""

    start: float
    dedupe_key: str
    triggered: bool = False
    predictions: int = 0
    feedback: int = 0
    negatives: int = 0
    errors: int = 0
    quiet_windows: int = 0
    baseline_negative: float | None = None  # the stream's negative-feedback rate before the episode
    round: int = 1

    def count_prediction(self, error: bool) -> None:
        self.predictions += 1
        self.errors += int(error)

    def count_feedback(self, negative: bool) -> None:
        self.feedback += 1
        self.negatives += int(negative)

    def revise_feedback(self, negative: bool) -> None:
        self.negatives = max(0, self.negatives + (1 if negative else -1))


@dataclass
class FollowUp:
    """An episode whose trigger led to a promotion, watched until the stream is back to its normal."""

    start: float  # the episode's start: follow-up rounds collect every correction since
    dedupe_key: str  # the episode's
    baseline_negative: float
    round: int  # the rounds triggered so far
    windows_over: int = 0
    quiet_windows: int = 0
    pending_since: float | None = None  # a round raised and not yet promoted


@dataclass
class TriggerDecision:
    """A trigger that is due, with its evidence as of the window that fired (``signals``: copies)."""

    trigger_id: str
    dedupe_key: str
    model: str
    alias: str
    version: str
    firing: list[str]
    signals: dict[str, SignalState]
    window_start: float
    window_end: float
    predictions: int
    feedback: int
    negatives: int
    errors: int
    reason: str = ""
    slice: str = ""  # the slice whose stream fired ("" for the alias's whole traffic)
    thresholds: dict[str, float] = field(default_factory=dict)  # a round's own bound on a signal


def _of_slice(st: Stream) -> str:
    return f" (slice {st.slice})" if st.slice else ""


def firing(s: MonitorSettings, signals: dict[str, SignalState]) -> list[str]:
    out = []
    for name in s.trigger_signals:
        need = s.sustained_windows if name in DRIFT_SIGNALS else 1
        if signals[name].windows_over >= need:
            out.append(name)
    return out


def _open_episode(st: Stream, window_start: float) -> Episode:
    key = f"{st.model}/{st.alias}/{st.version or 'base'}/{int(window_start * 1000)}"
    if st.slice:
        key += f"/{st.slice}"
    # The evidence a trigger carries: the window that fired and the rate windows behind it.
    return Episode(start=window_start, dedupe_key=key, predictions=st.s.window_size, feedback=len(st.negatives),
                   negatives=int(sum(st.negatives)), errors=int(sum(st.errors)),
                   baseline_negative=st.baseline_negative)


def follow_up_of(ep: Episode | None) -> FollowUp | None:
    """At a promotion: the follow-up of an episode that triggered and knows its pre-change rate."""
    if ep is None or not ep.triggered or ep.baseline_negative is None:
        return None
    return FollowUp(ep.start, ep.dedupe_key, ep.baseline_negative, ep.round)


def decide(st: Stream, window_start: float, now: float) -> TriggerDecision | None:
    """After a window was tested: update the stream's episode; a decision when a trigger is due."""
    if st.follow_up is not None:
        return _follow_up(st, now)
    names = firing(st.s, st.signals)
    if not names and st.episode is None:
        rate = st.signals["negative_feedback_rate"]
        if rate.samples >= st.s.min_samples and rate.value is not None:
            st.baseline_negative = rate.value  # the stream's normal, for the rounds of its next episode
    if not names:
        if st.episode is not None:
            st.episode.quiet_windows += 1
            if st.episode.quiet_windows >= st.s.clear_windows:
                st.episode = None
        return None
    if st.episode is None:
        st.episode = _open_episode(st, window_start)
    ep = st.episode
    ep.quiet_windows = 0
    if ep.triggered or now - st.last_trigger_at < st.s.cooldown_s:
        return None
    ep.triggered = True
    st.last_trigger_at = now
    return TriggerDecision(
        trigger_id=uuid.uuid4().hex, dedupe_key=ep.dedupe_key, model=st.model, alias=st.alias, version=st.version,
        firing=names, signals={k: replace(v) for k, v in st.signals.items()}, window_start=ep.start,
        window_end=st.last_event_time,
        predictions=ep.predictions, feedback=ep.feedback, negatives=ep.negatives, errors=ep.errors, slice=st.slice,
    )


def _follow_up(st: Stream, now: float) -> TriggerDecision | None:
    """A promoted episode: back to normal, or still worse than before the change (another round)."""
    fu, s = st.follow_up, st.s
    rate = st.signals["negative_feedback_rate"]
    if rate.samples < s.min_samples or rate.value is None:
        return None
    bound = fu.baseline_negative + s.follow_up_margin
    if rate.value > bound:
        fu.windows_over, fu.quiet_windows = fu.windows_over + 1, 0
    else:
        fu.windows_over, fu.quiet_windows = 0, fu.quiet_windows + 1
    if fu.quiet_windows >= s.clear_windows:
        st.follow_up = None
        st.follow_up_events.append("recovered")
        return None
    pending = fu.pending_since is not None and now - fu.pending_since < s.round_pending_s
    if fu.windows_over < s.follow_up_windows or pending:
        return None
    if fu.round >= s.max_rounds:
        st.follow_up = None  # no round left: the episode ends unresolved (the alert says so)
        st.follow_up_events.append("exhausted")
        return None
    fu.round += 1
    fu.pending_since, fu.windows_over = now, 0
    st.last_trigger_at = now
    st.follow_up_events.append("raised")
    return TriggerDecision(
        trigger_id=uuid.uuid4().hex, dedupe_key=f"{fu.dedupe_key}#round{fu.round}", model=st.model, alias=st.alias,
        version=st.version, firing=["negative_feedback_rate"], signals={k: replace(v) for k, v in st.signals.items()},
        window_start=fu.start, window_end=st.last_event_time, predictions=s.window_size, feedback=rate.samples,
        negatives=int(sum(st.negatives)), errors=int(sum(st.errors)),
        slice=st.slice,
        reason=(f"follow-up round {fu.round} of {s.max_rounds}{_of_slice(st)}: negative feedback {rate.value:.3f} "
                f"on {st.version} stays above the pre-change {fu.baseline_negative:.3f} + {s.follow_up_margin:.2f} for "
                f"{s.follow_up_windows} windows"),
        thresholds={"negative_feedback_rate": bound},
    )
