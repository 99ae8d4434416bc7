"""What the monitor reads from a PredictionEvent: a :class:`Sample` with named :class:`Features`.

This module is the one place that knows how an event becomes features; the streams and the drift
tests read them by name (the names in ``signals.FEATURES``). A row (``Features.row``) is the
persisted form, in ``FEATURES`` order.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

from driftloop.core.chat import asked
from driftloop.core.timestamps import seconds
from driftloop.monitor.signals import CHI2_SIGNALS, FEATURES, KS_SIGNALS
from driftloop.v1 import events_pb2

FINISH = {"stop": 0, "length": 1, "abort": 2, "error": 3}
OTHER_FINISH = 4
REFUSAL = re.compile(r"^\s*(i('| a)m sorry|i cannot|i can't|i don't know|sorry,|unable to)", re.IGNORECASE)


def answer_kind(completion: str) -> int:
    """0: an answer, 1: empty, 2: a refusal."""
    if not completion.strip():
        return 1
    return 2 if REFUSAL.match(completion) else 0


@dataclass(frozen=True)
class Features:
    prompt_length: float  # tokens (words when the event has no token count)
    response_length: float  # completion tokens
    mean_logprob: float  # NaN when the event has none
    finish_reason: int  # FINISH code, OTHER_FINISH for any other reason
    empty_or_refusal: int  # answer_kind

    @classmethod
    def of(cls, e: events_pb2.PredictionEvent) -> Features:
        logprob = e.mean_token_logprob if e.HasField("mean_token_logprob") else math.nan
        return cls(prompt_length=float(e.prompt_tokens or len(e.prompt.split())),
                   response_length=float(e.completion_tokens), mean_logprob=float(logprob),
                   finish_reason=FINISH.get(e.finish_reason, OTHER_FINISH),
                   empty_or_refusal=answer_kind(e.completion))

    def row(self) -> tuple[float | int, ...]:
        return tuple(getattr(self, name) for name in FEATURES)

    @classmethod
    def from_row(cls, row) -> Features:
        values = dict(zip(FEATURES, row, strict=True))
        return cls(**{k: float(values[k]) for k in KS_SIGNALS}, **{k: int(values[k]) for k in CHI2_SIGNALS})


def column(features: list[Features], name: str) -> np.ndarray:
    """One feature of many samples, by name."""
    return np.array([getattr(f, name) for f in features], dtype=np.float64)


def embedded_text(e: events_pb2.PredictionEvent) -> str:
    """What the input-drift test embeds: for a conversation its last user turn (what the user asks
    now; the system prompt and the history are the application's, the same for many requests),
    otherwise the prompt."""
    question = asked(e)
    return e.prompt if question is None else question


@dataclass
class Sample:
    """One analysed prediction: its features, the rate inputs and, once embedded, its prompt's vector."""

    prompt: str  # the text the input-drift test embeds (:func:`embedded_text`)
    features: Features
    error: bool  # a server-side failure (client-caused ones never reach a stream)
    latency: float
    time: float  # request time, seconds since the epoch
    embedding: np.ndarray | None = None

    @classmethod
    def from_event(cls, e: events_pb2.PredictionEvent) -> Sample:
        return cls(embedded_text(e), Features.of(e), bool(e.error_code), e.latency_seconds, seconds(e.request_time))
