"""Records are input like any other: what a prediction or feedback record must be before it
touches a stream (a violation raises InvalidEvent, which dead-letters the record), and which valid
predictions are not model health (never analysed, counted by reason)."""

from __future__ import annotations

import math
import time

from driftloop.core import ids
from driftloop.core.kafka import InvalidEvent
from driftloop.core.timestamps import seconds
from driftloop.monitor.settings import MonitorSettings
from driftloop.v1 import events_pb2

# Failures a client causes, for events that do not say who caused them (written before error_source).
CLIENT_CODES = frozenset({"CANCELLED", "NOT_FOUND", "INVALID_ARGUMENT", "PERMISSION_DENIED", "UNAUTHENTICATED",
                          "RESOURCE_EXHAUSTED"})


def _check_ids(**rules: tuple[ids.Rule, str, bool]) -> None:
    try:
        for rule, value, required in rules.values():
            rule.check(value, required)
    except ids.InvalidIdentifier as exc:
        raise InvalidEvent(str(exc), "invalid_identifier") from None


def check_time(name: str, t: float, s: MonitorSettings, now: float | None = None) -> None:
    """Event times must be sane: not older than max_event_age_s, not beyond max_clock_skew_s ahead."""
    now = time.time() if now is None else now
    if not (math.isfinite(t) and now - s.max_event_age_s <= t <= now + s.max_clock_skew_s):
        raise InvalidEvent(f"{name} {t:.0f} is outside [now - {s.max_event_age_s:.0f} s, now + "
                           f"{s.max_clock_skew_s:.0f} s]", "invalid_time")


def validate_prediction(e: events_pb2.PredictionEvent, s: MonitorSettings, now: float | None = None) -> None:
    missing = [f for f in ("request_id", "model") if not getattr(e, f)]
    if not e.HasField("request_time"):
        missing.append("request_time")
    if missing:
        raise InvalidEvent(f"PredictionEvent lacks {', '.join(missing)}", "missing_field")
    _check_ids(request_id=(ids.REQUEST_ID, e.request_id, True), model=(ids.MODEL, e.model, True),
               alias=(ids.ALIAS, e.adapter_alias, False), version=(ids.VERSION, e.adapter_version, False))
    check_time("request_time", seconds(e.request_time), s, now)
    if not e.error_code and not e.prompt:
        raise InvalidEvent("successful PredictionEvent with an empty prompt", "invalid")
    if e.latency_seconds < 0 or not math.isfinite(e.latency_seconds):
        raise InvalidEvent(f"latency_seconds {e.latency_seconds} is not a duration", "invalid")


def validate_feedback(e: events_pb2.FeedbackEvent, s: MonitorSettings, now: float | None = None) -> None:
    if not e.request_id or not e.feedback_id:
        raise InvalidEvent("FeedbackEvent lacks request_id or feedback_id", "missing_field")
    _check_ids(request_id=(ids.REQUEST_ID, e.request_id, True), feedback_id=(ids.REQUEST_ID, e.feedback_id, True))
    if e.HasField("time"):
        check_time("time", seconds(e.time), s, now)
    if e.rating not in (events_pb2.RATING_POSITIVE, events_pb2.RATING_NEGATIVE) and not e.correction:
        raise InvalidEvent("FeedbackEvent has neither a rating nor a correction", "invalid")


def client_caused(e: events_pb2.PredictionEvent) -> bool:
    """A failure the client caused (its unknown alias, its own deadline, its cancel): never model health."""
    if not e.error_code:
        return False
    if e.error_source != events_pb2.ERROR_SOURCE_UNSPECIFIED:
        return e.error_source == events_pb2.ERROR_SOURCE_CLIENT
    return e.error_code in CLIENT_CODES


def not_analysed(e: events_pb2.PredictionEvent) -> str | None:
    """Why a valid prediction is not model health (its ``events_total`` result), or None."""
    if e.tags.get("source") in ids.NOT_TRAFFIC_SOURCES:  # the gate's or an evaluation's requests
        return "ignored"
    if client_caused(e):  # the client's mistake or choice: counted apart, never model health
        return "client_error"
    if e.adapter_alias and not e.adapter_version:  # inference routed no version: not a served alias
        return "unrouted"
    return None


def is_negative(e: events_pb2.FeedbackEvent) -> bool:
    return e.rating == events_pb2.RATING_NEGATIVE or (e.rating == 0 and bool(e.correction))
