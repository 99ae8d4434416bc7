"""The prediction↔feedback join: feedback reaches its prediction's streams (its alias's and its
slices'), one verdict per request (the latest). Feedback that arrives before its prediction is
parked in the state file until the prediction comes (or the join TTL expires it)."""

from __future__ import annotations

from driftloop.core.metrics import MonitorMetrics
from driftloop.core.timestamps import seconds
from driftloop.core.topics import FEEDBACK
from driftloop.monitor.checkpoint import Checkpoint
from driftloop.monitor.state import StateStore
from driftloop.monitor.streams import Stream
from driftloop.monitor.validation import is_negative
from driftloop.v1 import events_pb2

SEP = "\x1e"  # between the stream keys of one request in the state file's joins


def join_keys(streams: list[Stream]) -> str:
    """What the state file's join remembers of a request: the keys of the streams it fed."""
    return SEP.join(st.key for st in streams)


class FeedbackJoin:
    def __init__(self, store: StateStore, streams: dict[str, Stream], checkpoint: Checkpoint,
                 metrics: MonitorMetrics) -> None:
        self._store = store
        self._streams = streams
        self._checkpoint = checkpoint
        self._metrics = metrics

    def prediction(self, streams: list[Stream], request_id: str) -> None:
        """A prediction joined ``streams``: the verdict parked for it, if any, counts now."""
        parked = self._store.take_parked(request_id)
        if parked is not None:
            self._verdict(streams, request_id, None, parked)

    def feedback(self, e: events_pb2.FeedbackEvent, now: float) -> None:
        joined = self._store.stream_of(e.request_id)
        negative = is_negative(e)
        if joined is None:
            self._store.park_feedback(e.feedback_id, e.request_id, negative, seconds(e.time) or now)
            return
        keys, verdict = joined
        streams = [st for st in (self._streams.get(k) for k in keys.split(SEP)) if st is not None]
        if streams:
            self._verdict(streams, e.request_id, verdict, negative)

    def _verdict(self, streams: list[Stream], request_id: str, previous: bool | None, negative: bool) -> None:
        """A repeated verdict is counted and changes nothing; a changed one replaces the earlier one
        in the rates (of every stream the request fed)."""
        events = self._metrics.events
        if previous is not None and previous == negative:
            events.labels(FEEDBACK.name, "repeated_verdict").inc()
            return
        self._store.set_verdict(request_id, negative)
        if previous is not None:
            events.labels(FEEDBACK.name, "revised_verdict").inc()
        for st in streams:
            if previous is None:
                st.add_feedback(negative)
            else:
                st.revise_feedback(previous, negative)
            self._checkpoint.changed(st)
            if not st.slice:
                self._metrics.feedback.labels(st.model, st.alias, "negative" if negative else "positive").inc()
