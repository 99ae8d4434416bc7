from __future__ import annotations

import pytest

from driftloop.core import codec
from driftloop.core.codec import UndecodableRecord
from driftloop.v1 import events_pb2


def _prediction() -> events_pb2.PredictionEvent:
    return events_pb2.PredictionEvent(
        request_id="r-1", model="m", adapter_alias="transit-qa", adapter_version="v1",
        prompt="When does the 12 run?", completion="Every 10 minutes.", prompt_tokens=7,
        completion_tokens=5, mean_token_logprob=-0.4, finish_reason="stop", latency_seconds=0.05,
    )


def test_round_trip_with_schema_header() -> None:
    value, headers = codec.encode(_prediction())
    assert dict(headers)["schema"] == b"driftloop.v1.PredictionEvent"
    assert dict(headers)["content-type"] == b"application/x-protobuf"
    decoded = codec.decode(value, headers, events_pb2.PredictionEvent)
    assert decoded == _prediction()
    assert decoded.HasField("mean_token_logprob")


def test_decode_any_picks_the_type_from_the_header() -> None:
    value, headers = codec.encode(events_pb2.FeedbackEvent(request_id="r", rating=events_pb2.RATING_NEGATIVE))
    msg = codec.decode_any(value, headers)
    assert isinstance(msg, events_pb2.FeedbackEvent)


@pytest.mark.parametrize(
    ("value", "headers", "error_type"),
    [
        (b"\x0a\x01x", None, "missing_schema"),
        (b"\x0a\x01x", [("schema", b"driftloop.v1.Nope")], "unknown_schema"),
        (b"\x0a\x01x", [("schema", b"\xff\xfe")], "unknown_schema"),
        (b"\xff\xff\xff\xff", [("schema", b"driftloop.v1.PredictionEvent")], "undecodable"),
        (None, [("schema", b"driftloop.v1.PredictionEvent")], "empty"),
        (b"", [("schema", b"driftloop.v1.PredictionEvent"), ("content-type", b"application/json")],
         "bad_content_type"),
        (b"\x0a\x01x", [("schema", b"driftloop.v1.FeedbackEvent")], "unexpected_schema"),
    ],
)
def test_refuses_what_it_cannot_decode(value, headers, error_type) -> None:
    with pytest.raises(UndecodableRecord) as info:
        codec.decode(value, headers, events_pb2.PredictionEvent)
    assert info.value.error_type == error_type
    assert info.value.reason


def test_only_event_types_are_encoded() -> None:
    from driftloop.v1 import inference_pb2

    with pytest.raises(TypeError):
        codec.encode(inference_pb2.GenerateRequest(prompt="x"))
