"""The transport-free core of the inference service: generation and feedback, whatever the caller.

A transport (the gRPC servicer today) turns its wire request into a :class:`GenerationRequest` or
:class:`FeedbackRequest` field for field and calls :class:`DataPlane`; everything else happens
here, once per request and in this order: validate → route (acquire a version) → drive the engine
under the deadline → record metrics → publish the event. What happened is an :class:`Outcome`;
a failure is always a domain error (:mod:`driftloop.inference.errors`), which the transport maps to
its own status.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field

import grpc

from driftloop.core.metrics import InferenceMetrics
from driftloop.inference import requests
from driftloop.inference.adapters import AdapterRegistry
from driftloop.inference.engine.base import Engine
from driftloop.inference.errors import DeadlineExceeded, InferenceError, Internal
from driftloop.inference.events import EventPublisher
from driftloop.inference.settings import InferenceSettings
from driftloop.v1 import events_pb2

log = logging.getLogger(__name__)

# Refused before the engine saw anything: counted in metrics, never an event (so never model health).
NOT_AN_EVENT = frozenset({grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND,
                          grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNAUTHENTICATED,
                          grpc.StatusCode.RESOURCE_EXHAUSTED})


@dataclass(frozen=True)
class Sampling:
    """Sampling as the caller asked for it; None (or 0 for max_tokens) means "the default"."""

    max_tokens: int = 0
    temperature: float | None = None
    top_p: float | None = None
    seed: int | None = None
    stop: tuple[str, ...] = ()
    min_tokens: int = 0
    logprobs: bool = False  # return each generated token's log-probability (OpenAI's ``logprobs``)


@dataclass(frozen=True)
class ChatMessage:
    """One turn of a conversation (role: system, user or assistant)."""

    role: str
    content: str


@dataclass(frozen=True)
class GenerationRequest:
    """One generation request as any transport received it: not validated yet. Either a raw
    ``prompt`` or chat ``messages`` (rendered with the base model's chat template)."""

    prompt: str = ""
    messages: tuple[ChatMessage, ...] = ()
    request_id: str = ""
    adapter_alias: str = ""
    adapter_version: str = ""
    sampling: Sampling = Sampling()
    tags: Mapping[str, str] = field(default_factory=dict)
    stream: bool = False
    transport: str = "grpc"  # which listener it came through ("grpc" or "http"): a metric label


@dataclass(frozen=True)
class FeedbackRequest:
    request_id: str
    rating: int = 0
    correction: str = ""
    comment: str = ""
    tags: Mapping[str, str] = field(default_factory=dict)


@dataclass
class Outcome:
    """What one generation produced, filled in as it streams; final once the stream has ended."""

    request_id: str
    started: float  # wall clock, for the event's request_time
    prompt: str = ""  # what the model was given: the raw prompt, or the chat template's rendering
    text: list[str] = field(default_factory=list)
    adapter_version: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    logprob_sum: float | None = None
    token_logprobs: list[tuple[int, float]] = field(default_factory=list)  # when asked (Sampling.logprobs)
    finish_reason: str = ""
    ttft: float | None = None
    latency: float = 0.0
    code: grpc.StatusCode = grpc.StatusCode.OK
    message: str = ""
    error_source: int = events_pb2.ERROR_SOURCE_UNSPECIFIED

    @property
    def mean_logprob(self) -> float | None:
        if self.logprob_sum is None or not self.completion_tokens:
            return None
        return self.logprob_sum / self.completion_tokens

    def fail(self, code: grpc.StatusCode, message: str, finish: str, client: bool) -> None:
        self.code, self.message, self.finish_reason = code, message, finish
        self.error_source = events_pb2.ERROR_SOURCE_CLIENT if client else events_pb2.ERROR_SOURCE_SERVER


@dataclass(frozen=True)
class Chunk:
    """One step of a generation: the new text, and the outcome so far."""

    delta: str
    outcome: Outcome
    token_logprobs: tuple[tuple[int, float], ...] = ()  # the delta's tokens, when asked


class DataPlane:
    def __init__(self, settings: InferenceSettings, engine: Engine, registry: AdapterRegistry,
                 metrics: InferenceMetrics, events: EventPublisher | None = None,
                 clock: Callable[[], float] = time.perf_counter, wall: Callable[[], float] = time.time) -> None:
        self.s = settings
        self.engine = engine
        self.registry = registry
        self.m = metrics
        self.events = events
        self._clock = clock
        self._wall = wall

    async def generate(self, req: GenerationRequest, authenticated: bool = False,
                       time_remaining: float | None = None) -> Outcome:
        """Run a generation to its end and return its outcome."""
        last: Outcome | None = None
        async for chunk in self.stream(req, authenticated, time_remaining):
            last = chunk.outcome
        assert last is not None  # stream() raises rather than end without a step
        return last

    async def stream(self, req: GenerationRequest, authenticated: bool = False,
                     time_remaining: float | None = None) -> AsyncIterator[Chunk]:
        """Stream a generation; records metrics and publishes the PredictionEvent, whatever happens.

        ``time_remaining``: the caller's deadline in seconds (None: the service's default)."""
        t0 = self._clock()
        out = Outcome(request_id=req.request_id or uuid.uuid4().hex, started=self._wall())
        # A deadline shorter than the service's own default is the client's choice; one at least that
        # long running out means the model was too slow.
        client_deadline = time_remaining is not None and time_remaining < self.s.default_deadline_s
        budget = self.s.default_deadline_s if time_remaining is None else time_remaining
        version = None
        self.m.in_flight.inc()
        try:
            params = requests.generation_params(req, self.s, authenticated)
            prompt_ids = self._tokenize(req, out)  # once: the engine gets the ids
            out.prompt_tokens = len(prompt_ids)
            requests.check_fits(out.prompt_tokens, params, self.engine.max_model_len)
            version = self.registry.acquire(req.adapter_alias, req.adapter_version, out.request_id)
            out.adapter_version = version.version if version else ""
            async with asyncio.timeout(budget):
                async for step in self.engine.generate(out.request_id, prompt_ids, params,
                                                       version.handle if version else None):
                    # Time to first token is what a streaming client sees; a unary call answers once.
                    if req.stream and step.text_delta and out.ttft is None:
                        out.ttft = self._clock() - t0
                    out.text.append(step.text_delta)
                    out.prompt_tokens = step.prompt_tokens or out.prompt_tokens
                    out.completion_tokens = step.completion_tokens
                    out.logprob_sum = step.logprob_sum
                    out.token_logprobs += step.token_logprobs
                    out.finish_reason = step.finish_reason or out.finish_reason
                    out.latency = self._clock() - t0
                    yield Chunk(step.text_delta, out, step.token_logprobs)
            if not out.text:
                raise Internal("engine returned no output")
        except InferenceError as exc:
            out.fail(exc.code, str(exc), "error", client=exc.code in NOT_AN_EVENT)
            raise
        except TimeoutError:
            # Whose deadline ran out decides whose failure it is.
            out.fail(grpc.StatusCode.DEADLINE_EXCEEDED, "deadline exceeded", "abort", client=client_deadline)
            raise DeadlineExceeded(out.message) from None
        except asyncio.CancelledError:
            out.fail(grpc.StatusCode.CANCELLED, "cancelled by the client", "abort", client=True)
            raise
        except Exception as exc:
            log.exception("generation %s failed", out.request_id)
            out.fail(grpc.StatusCode.INTERNAL, f"engine error: {type(exc).__name__}", "error", client=False)
            raise Internal(out.message) from exc
        finally:
            self.registry.release(version)
            self.m.in_flight.dec()
            out.latency = self._clock() - t0
            self._record(req, out)
            if self.events is not None and out.code not in NOT_AN_EVENT:
                self.events.prediction(req, out)

    def _tokenize(self, req: GenerationRequest, out: Outcome) -> list[int]:
        """The prompt's token ids; a conversation is first rendered by the model's chat template,
        whose text already holds the special tokens it wants (so none are added again)."""
        if req.messages:
            out.prompt = self.engine.render_chat(req.messages)
            return self.engine.tokenize(out.prompt, add_special_tokens=False)
        out.prompt = req.prompt
        return self.engine.tokenize(req.prompt)

    def _record(self, req: GenerationRequest, out: Outcome) -> None:
        """Count the request under the version that served it. Labels stay bounded: the alias only when
        routed or one of its loaded versions served it, the version only when loaded. The caller runs
        this right after releasing the version, with no await in between, so it lands before an unload
        can finish and remove the version's series (InferenceMetrics.keep_versions)."""
        method = "GenerateStream" if req.stream else "Generate"
        alias = req.adapter_alias
        if not (out.adapter_version or self.registry.route(alias)):
            alias = "" if not alias else "unknown"
        served = self.m.served_by(alias, out.adapter_version)
        served.requests(method, out.code.name, req.transport).inc()
        if out.code == grpc.StatusCode.OK:
            served.latency(method, req.transport).observe(out.latency)
            if out.ttft is not None:
                served.ttft().observe(out.ttft)
            served.tokens("prompt").inc(out.prompt_tokens)
            served.tokens("completion").inc(out.completion_tokens)

    def submit_feedback(self, req: FeedbackRequest, authenticated: bool = False) -> str:
        """Validate, count and publish one piece of feedback; returns its feedback id."""
        requests.check_feedback(req, authenticated)
        feedback_id = uuid.uuid4().hex
        self.m.feedback.labels(events_pb2.Rating.Name(req.rating).removeprefix("RATING_").lower()).inc()
        if self.events is not None:
            self.events.feedback(req, feedback_id, self._wall())
        return feedback_id
