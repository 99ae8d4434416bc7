"""Records are input like any other: identifiers, times and error sources are checked before a record
touches a stream, and feedback is one verdict per request (no Kafka, no embedder)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from driftloop.core.kafka import InvalidEvent
from driftloop.monitor.settings import MonitorSettings
from driftloop.monitor.state import StateStore
from driftloop.monitor.streams import Stream, stream_key
from driftloop.monitor.validation import client_caused, not_analysed, validate_feedback, validate_prediction
from driftloop.v1 import events_pb2

S = MonitorSettings()


def prediction(**fields) -> events_pb2.PredictionEvent:
    e = events_pb2.PredictionEvent(request_id="r1", model="m", adapter_alias="transit-qa", adapter_version="v1",
                                   prompt="Q: hi\nA:", latency_seconds=0.1)
    e.request_time.FromSeconds(int(time.time()))
    for k, v in fields.items():
        if k == "t":
            e.request_time.FromSeconds(int(v))
        else:
            setattr(e, k, v)
    return e


def test_a_sane_prediction_passes() -> None:
    validate_prediction(prediction(), S)


@pytest.mark.parametrize("fields,error_type", [
    ({"t": time.time() + 10 * 365 * 86400}, "invalid_time"),  # far future: crashed the monitor's trigger
    ({"t": 1}, "invalid_time"),
    ({"adapter_alias": "../../etc"}, "invalid_identifier"),
    ({"adapter_alias": "a" * 100_000}, "invalid_identifier"),
    ({"request_id": "id with spaces"}, "invalid_identifier"),
    ({"model": "m\n"}, "invalid_identifier"),
    ({"latency_seconds": float("nan")}, "invalid"),
])
def test_invalid_predictions_are_refused_with_a_reason(fields: dict, error_type: str) -> None:
    with pytest.raises(InvalidEvent) as err:
        validate_prediction(prediction(**fields), S)
    assert err.value.error_type == error_type and len(err.value.reason) < 300


def test_feedback_times_and_ids_are_checked() -> None:
    fb = events_pb2.FeedbackEvent(feedback_id="f1", request_id="r1", rating=events_pb2.RATING_NEGATIVE)
    validate_feedback(fb, S)
    fb.time.FromSeconds(int(time.time()) + 86400)
    with pytest.raises(InvalidEvent, match="time"):
        validate_feedback(fb, S)
    with pytest.raises(InvalidEvent):
        validate_feedback(events_pb2.FeedbackEvent(feedback_id="f/1", request_id="r1", rating=1), S)


def test_only_server_side_failures_are_model_health() -> None:
    assert not client_caused(prediction())
    assert client_caused(prediction(error_code="DEADLINE_EXCEEDED", error_source=events_pb2.ERROR_SOURCE_CLIENT))
    assert not client_caused(prediction(error_code="DEADLINE_EXCEEDED",
                                        error_source=events_pb2.ERROR_SOURCE_SERVER))
    assert client_caused(prediction(error_code="CANCELLED"))  # events written before error_source
    assert client_caused(prediction(error_code="NOT_FOUND"))
    assert not client_caused(prediction(error_code="INTERNAL"))


def test_not_traffic_and_unrouted_predictions_are_not_analysed() -> None:
    from driftloop.core.ids import NOT_TRAFFIC_SOURCES  # the retrainer's canary check uses the same set

    for source in NOT_TRAFFIC_SOURCES:
        e = prediction()
        e.tags["source"] = source
        assert not_analysed(e) == "ignored"
    assert not_analysed(prediction(error_code="CANCELLED")) == "client_error"
    assert not_analysed(prediction(adapter_version="")) == "unrouted"
    assert not_analysed(prediction(error_code="INTERNAL")) is None


def test_a_changed_verdict_replaces_the_earlier_one_in_the_rate() -> None:
    st = Stream("m", "a", S)
    for negative in (True, False, True):
        st.add_feedback(negative)
    st.revise_feedback(True, False)  # the latest request's verdict flipped
    assert list(st.negatives) == [True, False, False]
    st.revise_feedback(False, False)  # same verdict: nothing changes
    assert list(st.negatives) == [True, False, False]


def test_the_join_keeps_one_verdict_per_request(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "m.sqlite")
    store.begin()
    key = stream_key("m", "a")
    assert store.remember_prediction("r1", key, 1.0)
    assert store.stream_of("r1") == (key, None)
    store.set_verdict("r1", True)
    assert store.stream_of("r1") == (key, True)
    store.park_feedback("f1", "r2", True, 1.0)
    store.park_feedback("f2", "r2", False, 2.0)  # the latest parked verdict wins
    assert store.take_parked("r2") is False and store.take_parked("r2") is None
    store.commit()
    store.close()
