"""gRPC servicers: thin handlers over the engine, the adapter registry and the event emitter.

Handlers raise domain errors (driftloop.inference.errors); ``_grpc_errors`` is the one place that
turns them into statuses.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import grpc

from driftloop.core.metrics import InferenceMetrics
from driftloop.core.spool import EventEmitter
from driftloop.core.timestamps import timestamp
from driftloop.core.topics import FEEDBACK, PREDICTIONS
from driftloop.inference import requests
from driftloop.inference.adapters import AdapterRegistry, AdapterVersion, Route
from driftloop.inference.auth import AdminAuth
from driftloop.inference.engine.base import Engine, LoraHandle
from driftloop.inference.errors import DeadlineExceeded, InferenceError, status_for
from driftloop.inference.settings import InferenceSettings
from driftloop.v1 import events_pb2, inference_pb2, inference_pb2_grpc

log = logging.getLogger(__name__)

# Events are bounded by design (PredictionEvent.truncated_fields says what was cut).
EVENT_MAX_TEXT_CHARS = 16_384
EVENT_MAX_ERROR_CHARS = 512
# Refused before the engine saw anything: counted in metrics, never an event (so never model health).
NOT_AN_EVENT = frozenset({grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND,
                          grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNAUTHENTICATED,
                          grpc.StatusCode.RESOURCE_EXHAUSTED})


def bounded(ev, field: str, limit: int) -> None:
    """Cut a text field of an event to ``limit`` characters and name it in ``truncated_fields``."""
    value = getattr(ev, field)
    if len(value) > limit:
        setattr(ev, field, value[:limit])
        ev.truncated_fields.append(field)


def _grpc_errors(handler: Callable) -> Callable:
    """Map domain errors of a unary handler to gRPC statuses."""

    @functools.wraps(handler)
    async def wrapper(self, request, context: grpc.aio.ServicerContext):
        try:
            return await handler(self, request, context)
        except InferenceError as exc:
            await context.abort(*status_for(exc))

    return wrapper


def lora_handle(v: AdapterVersion | None) -> LoraHandle | None:
    return None if v is None else LoraHandle(v.lora_name, v.lora_int_id, v.path)


@dataclass
class _Outcome:
    """What one generation produced, filled in as it streams."""

    text: list[str] = field(default_factory=list)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    logprob_sum: float | None = None
    finish_reason: str = ""
    ttft: float | None = None
    latency: float = 0.0
    t0: float = 0.0
    code: grpc.StatusCode = grpc.StatusCode.OK
    message: str = ""
    error_source: int = events_pb2.ERROR_SOURCE_UNSPECIFIED

    def usage(self) -> inference_pb2.Usage:
        u = inference_pb2.Usage(prompt_tokens=self.prompt_tokens, completion_tokens=self.completion_tokens,
                                latency_seconds=self.latency)
        if self.logprob_sum is not None and self.completion_tokens:
            u.mean_token_logprob = self.logprob_sum / self.completion_tokens
        if self.ttft is not None:
            u.time_to_first_token_seconds = self.ttft
        return u


class InferenceServicer(inference_pb2_grpc.InferenceServicer):
    def __init__(
        self, settings: InferenceSettings, engine: Engine, registry: AdapterRegistry,
        emitter: EventEmitter | None, metrics: InferenceMetrics, auth: AdminAuth | None = None,
    ) -> None:
        self.auth = auth or AdminAuth(None)
        self.s = settings
        self.engine = engine
        self.registry = registry
        self.emitter = emitter
        self.m = metrics

    async def _generate(
        self, request: inference_pb2.GenerateRequest, context: grpc.aio.ServicerContext, stream: bool
    ) -> AsyncIterator[tuple[str, _Outcome, AdapterVersion | None, str]]:
        """Run one generation, yielding (delta, outcome, version, request_id) per step; always
        records metrics and emits the PredictionEvent, whatever happens."""
        started, t0 = time.time(), time.perf_counter()
        method = "GenerateStream" if stream else "Generate"
        request_id = request.request_id or uuid.uuid4().hex
        alias = request.adapter_alias
        out = _Outcome(t0=t0)
        version: AdapterVersion | None = None
        label_alias = alias if self.registry.route(alias) else ("" if not alias else "unknown")
        client_deadline = False
        self.m.in_flight.inc()
        try:
            params = requests.generation_params(request, self.s,
                                                self.auth.admitted(context.invocation_metadata()))
            out.prompt_tokens = self.engine.count_tokens(request.prompt)
            requests.check_fits(out.prompt_tokens, params, self.engine.max_model_len)
            version = self.registry.acquire(alias, request.adapter_version, request_id)
            remaining = context.time_remaining()
            budget = self.s.default_deadline_s if remaining is None else remaining
            # A deadline shorter than the service's own default is the client's choice; one at least
            # that long running out means the model was too slow.
            client_deadline = remaining is not None and remaining < self.s.default_deadline_s
            async with asyncio.timeout(budget):
                async for step in self.engine.generate(request_id, request.prompt, params, lora_handle(version)):
                    if step.text_delta and out.ttft is None:
                        out.ttft = time.perf_counter() - t0
                    out.text.append(step.text_delta)
                    out.prompt_tokens = step.prompt_tokens or out.prompt_tokens
                    out.completion_tokens = step.completion_tokens
                    out.logprob_sum = step.logprob_sum
                    if step.finish_reason:
                        out.finish_reason = step.finish_reason
                    yield step.text_delta, out, version, request_id
        except InferenceError as exc:
            out.code, out.message = status_for(exc)
            out.finish_reason = "error"
            out.error_source = events_pb2.ERROR_SOURCE_CLIENT if out.code in NOT_AN_EVENT \
                else events_pb2.ERROR_SOURCE_SERVER
            raise
        except TimeoutError:
            # Whose deadline ran out decides whose failure it is: a client's own short deadline is its
            # choice, the server's default deadline is the model being too slow.
            out.code, out.message = grpc.StatusCode.DEADLINE_EXCEEDED, "deadline exceeded"
            out.finish_reason = "abort"
            out.error_source = events_pb2.ERROR_SOURCE_CLIENT if client_deadline else events_pb2.ERROR_SOURCE_SERVER
            raise DeadlineExceeded(out.message) from None
        except asyncio.CancelledError:
            out.code, out.message = grpc.StatusCode.CANCELLED, "cancelled by the client"
            out.finish_reason = "abort"
            out.error_source = events_pb2.ERROR_SOURCE_CLIENT
            raise
        except Exception as exc:
            log.exception("generation %s failed", request_id)
            out.code, out.message = grpc.StatusCode.INTERNAL, f"engine error: {type(exc).__name__}"
            out.finish_reason = "error"
            out.error_source = events_pb2.ERROR_SOURCE_SERVER
            raise
        finally:
            self.registry.release(version)
            self.m.in_flight.dec()
            out.latency = latency = time.perf_counter() - t0
            self._record(method, label_alias, out, latency)
            self._emit(request, request_id, version, out, started, latency, stream)

    def _record(self, method: str, alias: str, out: _Outcome, latency: float) -> None:
        model = self.s.model_name
        self.m.requests.labels(method, model, alias, out.code.name).inc()
        if out.code == grpc.StatusCode.OK:
            self.m.latency.labels(method, model, alias).observe(latency)
            if out.ttft is not None:
                self.m.ttft.labels(model, alias).observe(out.ttft)
            self.m.tokens.labels(model, alias, "prompt").inc(out.prompt_tokens)
            self.m.tokens.labels(model, alias, "completion").inc(out.completion_tokens)

    def _emit(self, request, request_id: str, version: AdapterVersion | None, out: _Outcome,
              started: float, latency: float, stream: bool) -> None:
        if self.emitter is None or out.code in NOT_AN_EVENT:
            return  # refused before the model: counted in metrics, not an event
        ev = events_pb2.PredictionEvent(
            request_id=request_id, request_time=timestamp(started), response_time=timestamp(started + latency),
            model=self.s.model_name, adapter_alias=request.adapter_alias,
            adapter_version=version.version if version else "", prompt=request.prompt,
            completion="".join(out.text), prompt_tokens=out.prompt_tokens,
            completion_tokens=out.completion_tokens, finish_reason=out.finish_reason or "stop",
            latency_seconds=latency, replica=self.s.replica, stream=stream,
            error_code="" if out.code == grpc.StatusCode.OK else out.code.name, error_message=out.message,
            pinned=bool(request.adapter_version), error_source=out.error_source,
        )
        bounded(ev, "prompt", EVENT_MAX_TEXT_CHARS)
        bounded(ev, "completion", EVENT_MAX_TEXT_CHARS)
        bounded(ev, "error_message", EVENT_MAX_ERROR_CHARS)
        if out.logprob_sum is not None and out.completion_tokens:
            ev.mean_token_logprob = out.logprob_sum / out.completion_tokens
        if out.ttft is not None:
            ev.time_to_first_token_seconds = out.ttft
        ev.tags.update(request.tags)
        self.emitter.emit(PREDICTIONS, request_id, ev)

    async def Generate(self, request, context):
        last = None
        try:
            async for _, out, version, rid in self._generate(request, context, stream=False):
                last = (out, version, rid)
        except InferenceError as exc:
            await context.abort(*status_for(exc))
        if last is None:  # the engine produced no step at all
            await context.abort(grpc.StatusCode.INTERNAL, "engine returned no output")
        out, version, rid = last
        return inference_pb2.GenerateResponse(
            request_id=rid, text="".join(out.text), model=self.s.model_name,
            adapter_alias=request.adapter_alias, adapter_version=version.version if version else "",
            finish_reason=out.finish_reason, usage=out.usage(),
        )

    async def GenerateStream(self, request, context):
        first = True
        try:
            async for delta, out, version, rid in self._generate(request, context, stream=True):
                if not delta and not out.finish_reason and not first:
                    continue
                msg = inference_pb2.GenerateStreamResponse(request_id=rid, text_delta=delta)
                if first:
                    msg.model = self.s.model_name
                    msg.adapter_alias = request.adapter_alias
                    msg.adapter_version = version.version if version else ""
                    first = False
                if out.finish_reason:
                    out.latency = time.perf_counter() - out.t0
                    msg.finish_reason = out.finish_reason
                    msg.usage.CopyFrom(out.usage())
                yield msg
        except InferenceError as exc:
            await context.abort(*status_for(exc))

    @_grpc_errors
    async def SubmitFeedback(self, request, context):
        requests.check_feedback(request, self.auth.admitted(context.invocation_metadata()))
        feedback_id = uuid.uuid4().hex
        rating = events_pb2.Rating.Name(request.rating).removeprefix("RATING_").lower()
        self.m.feedback.labels(rating).inc()
        if self.emitter is not None:
            ev = events_pb2.FeedbackEvent(
                feedback_id=feedback_id, request_id=request.request_id, time=timestamp(),
                rating=request.rating, correction=request.correction, comment=request.comment,
            )
            bounded(ev, "correction", EVENT_MAX_TEXT_CHARS)
            bounded(ev, "comment", EVENT_MAX_TEXT_CHARS)
            ev.tags.update(request.tags)
            self.emitter.emit(FEEDBACK, request.request_id, ev)
        return inference_pb2.SubmitFeedbackResponse(feedback_id=feedback_id)


def version_info(registry: AdapterRegistry, v: AdapterVersion) -> inference_pb2.AdapterVersionInfo:
    route = registry.route(v.alias)
    return inference_pb2.AdapterVersionInfo(
        adapter_alias=v.alias, version=v.version, path=v.rel_path, lora_int_id=v.lora_int_id, rank=v.rank,
        state=inference_pb2.ADAPTER_STATE_DRAINING if v.draining else inference_pb2.ADAPTER_STATE_LOADED,
        in_flight=v.in_flight, stable=bool(route and route.stable == v.version),
        canary=bool(route and route.canary == v.version),
    )


def route_msg(r: Route) -> inference_pb2.AdapterRoute:
    return inference_pb2.AdapterRoute(adapter_alias=r.alias, stable_version=r.stable,
                                      canary_version=r.canary, canary_weight=r.canary_weight,
                                      generation=r.generation)


class AdapterAdminServicer(inference_pb2_grpc.AdapterAdminServicer):
    def __init__(self, registry: AdapterRegistry, metrics: InferenceMetrics) -> None:
        self.registry = registry
        self.m = metrics

    @_grpc_errors
    async def ListAdapters(self, request, context):
        return inference_pb2.ListAdaptersResponse(
            versions=[version_info(self.registry, v) for v in self.registry.versions(request.adapter_alias)],
            routes=[route_msg(r) for r in self.registry.routes(request.adapter_alias)],
        )

    @_grpc_errors
    async def LoadAdapter(self, request, context):
        try:
            v = await self.registry.load(request.adapter_alias, request.version, request.path, request.sha256)
        except InferenceError as exc:
            self.m.adapter_rejections.labels(type(exc).__name__).inc()
            raise
        return inference_pb2.LoadAdapterResponse(info=version_info(self.registry, v))

    @_grpc_errors
    async def SetRoute(self, request, context):
        r = self.registry.set_route(request.adapter_alias, request.stable_version, request.canary_version,
                                    request.canary_weight)
        return inference_pb2.SetRouteResponse(route=route_msg(r))

    @_grpc_errors
    async def UnloadAdapter(self, request, context):
        remaining = context.time_remaining()
        try:
            await self.registry.unload(request.adapter_alias, request.version, timeout=remaining)
        except TimeoutError:
            raise DeadlineExceeded(f"{request.adapter_alias}@{request.version} still draining") from None
        return inference_pb2.UnloadAdapterResponse()

