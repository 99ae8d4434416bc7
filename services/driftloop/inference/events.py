"""The events the inference service publishes, built in one place from what the data plane saw.

Events are bounded by design: a text field over its limit is cut and named in the event's
``truncated_fields``. Publishing goes through the spool (:class:`driftloop.core.emitter.EventEmitter`),
which never blocks a request on Kafka.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import grpc

from driftloop.core.emitter import EventEmitter
from driftloop.core.timestamps import timestamp
from driftloop.core.topics import FEEDBACK, PREDICTIONS
from driftloop.inference.settings import InferenceSettings
from driftloop.v1 import events_pb2

if TYPE_CHECKING:
    from driftloop.inference.dataplane import FeedbackRequest, GenerationRequest, Outcome

EVENT_MAX_TEXT_CHARS = 16_384
EVENT_MAX_ERROR_CHARS = 512


def bounded(ev, name: str, limit: int) -> None:
    """Cut a text field of an event to ``limit`` characters and name it in ``truncated_fields``."""
    value = getattr(ev, name)
    if len(value) > limit:
        setattr(ev, name, value[:limit])
        ev.truncated_fields.append(name)


def prediction_event(req: GenerationRequest, out: Outcome, s: InferenceSettings) -> events_pb2.PredictionEvent:
    ev = events_pb2.PredictionEvent(
        request_id=out.request_id, request_time=timestamp(out.started),
        response_time=timestamp(out.started + out.latency), model=s.model_name,
        adapter_alias=req.adapter_alias, adapter_version=out.adapter_version, prompt=out.prompt or req.prompt,
        completion="".join(out.text), prompt_tokens=out.prompt_tokens, completion_tokens=out.completion_tokens,
        finish_reason=out.finish_reason or "stop", latency_seconds=out.latency, replica=s.replica,
        stream=req.stream, error_code="" if out.code == grpc.StatusCode.OK else out.code.name,
        error_message=out.message, pinned=bool(req.adapter_version), error_source=out.error_source,
        transport=req.transport,
    )
    for m in req.messages:
        ev.messages.add(role=m.role, content=m.content[:EVENT_MAX_TEXT_CHARS])
    if any(len(m.content) > EVENT_MAX_TEXT_CHARS for m in req.messages):
        ev.truncated_fields.append("messages")
    bounded(ev, "prompt", EVENT_MAX_TEXT_CHARS)
    bounded(ev, "completion", EVENT_MAX_TEXT_CHARS)
    bounded(ev, "error_message", EVENT_MAX_ERROR_CHARS)
    if out.mean_logprob is not None:
        ev.mean_token_logprob = out.mean_logprob
    if out.ttft is not None:
        ev.time_to_first_token_seconds = out.ttft
    ev.tags.update(req.tags)
    return ev


def feedback_event(req: FeedbackRequest, feedback_id: str, at: float) -> events_pb2.FeedbackEvent:
    ev = events_pb2.FeedbackEvent(feedback_id=feedback_id, request_id=req.request_id, time=timestamp(at),
                                  rating=req.rating, correction=req.correction, comment=req.comment)
    bounded(ev, "correction", EVENT_MAX_TEXT_CHARS)
    bounded(ev, "comment", EVENT_MAX_TEXT_CHARS)
    ev.tags.update(req.tags)
    return ev


class EventPublisher:
    """Builds each event and hands it to the emitter, keyed by request id (one partition per request)."""

    def __init__(self, emitter: EventEmitter, settings: InferenceSettings) -> None:
        self.emitter = emitter
        self.s = settings

    def prediction(self, req: GenerationRequest, out: Outcome) -> None:
        self.emitter.emit(PREDICTIONS, out.request_id, prediction_event(req, out, self.s))

    def feedback(self, req: FeedbackRequest, feedback_id: str, at: float) -> None:
        self.emitter.emit(FEEDBACK, req.request_id, feedback_event(req, feedback_id, at))
