"""gRPC handlers: translate wire messages to the data plane's requests and its outcomes back.

No handler maps an error: domain errors propagate to the server's
:class:`driftloop.inference.interceptor.ErrorInterceptor`, the one place that builds a status.
"""

from __future__ import annotations

import grpc

from driftloop.core.metrics import InferenceMetrics
from driftloop.inference.adapters import AdapterRegistry, AdapterVersion, Route
from driftloop.inference.auth import AdminAuth
from driftloop.inference.dataplane import (
    ChatMessage,
    DataPlane,
    FeedbackRequest,
    GenerationRequest,
    Outcome,
    Sampling,
)
from driftloop.inference.errors import DeadlineExceeded, InferenceError
from driftloop.v1 import inference_pb2, inference_pb2_grpc


def generation_request(req: inference_pb2.GenerateRequest, stream: bool) -> GenerationRequest:
    sp = req.sampling
    return GenerationRequest(
        prompt=req.prompt, messages=tuple(ChatMessage(m.role, m.content) for m in req.messages),
        request_id=req.request_id, adapter_alias=req.adapter_alias,
        adapter_version=req.adapter_version, tags=dict(req.tags), stream=stream,
        sampling=Sampling(
            max_tokens=sp.max_tokens, min_tokens=sp.min_tokens, stop=tuple(sp.stop),
            temperature=sp.temperature if sp.HasField("temperature") else None,
            top_p=sp.top_p if sp.HasField("top_p") else None,
            seed=sp.seed if sp.HasField("seed") else None,
        ),
    )


def usage(out: Outcome) -> inference_pb2.Usage:
    u = inference_pb2.Usage(prompt_tokens=out.prompt_tokens, completion_tokens=out.completion_tokens,
                            latency_seconds=out.latency)
    if out.mean_logprob is not None:
        u.mean_token_logprob = out.mean_logprob
    if out.ttft is not None:
        u.time_to_first_token_seconds = out.ttft
    return u


class InferenceServicer(inference_pb2_grpc.InferenceServicer):
    def __init__(self, plane: DataPlane, auth: AdminAuth | None = None) -> None:
        self.plane = plane
        self.auth = auth or AdminAuth(None)

    def _admitted(self, context: grpc.aio.ServicerContext) -> bool:
        return self.auth.admitted(context.invocation_metadata())

    async def Generate(self, request, context):
        out = await self.plane.generate(generation_request(request, stream=False), self._admitted(context),
                                        context.time_remaining())
        return inference_pb2.GenerateResponse(
            request_id=out.request_id, text="".join(out.text), model=self.plane.s.model_name,
            adapter_alias=request.adapter_alias, adapter_version=out.adapter_version,
            finish_reason=out.finish_reason, usage=usage(out),
        )

    async def GenerateStream(self, request, context):
        first = True
        async for chunk in self.plane.stream(generation_request(request, stream=True), self._admitted(context),
                                             context.time_remaining()):
            out = chunk.outcome
            if not chunk.delta and not out.finish_reason and not first:
                continue
            msg = inference_pb2.GenerateStreamResponse(request_id=out.request_id, text_delta=chunk.delta)
            if first:
                msg.model = self.plane.s.model_name
                msg.adapter_alias = request.adapter_alias
                msg.adapter_version = out.adapter_version
                first = False
            if out.finish_reason:
                msg.finish_reason = out.finish_reason
                msg.usage.CopyFrom(usage(out))
            yield msg

    async def SubmitFeedback(self, request, context):
        feedback_id = self.plane.submit_feedback(FeedbackRequest(
            request_id=request.request_id, rating=request.rating, correction=request.correction,
            comment=request.comment, tags=dict(request.tags)), self._admitted(context))
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

    async def ListAdapters(self, request, context):
        return inference_pb2.ListAdaptersResponse(
            versions=[version_info(self.registry, v) for v in self.registry.versions(request.adapter_alias)],
            routes=[route_msg(r) for r in self.registry.routes(request.adapter_alias)],
        )

    async def LoadAdapter(self, request, context):
        try:
            v = await self.registry.load(request.adapter_alias, request.version, request.path, request.sha256)
        except InferenceError as exc:
            self.m.adapter_rejections.labels(type(exc).__name__).inc()
            raise
        return inference_pb2.LoadAdapterResponse(info=version_info(self.registry, v))

    async def SetRoute(self, request, context):
        r = self.registry.set_route(request.adapter_alias, request.stable_version, request.canary_version,
                                    request.canary_weight)
        return inference_pb2.SetRouteResponse(route=route_msg(r))

    async def UnloadAdapter(self, request, context):
        try:
            await self.registry.unload(request.adapter_alias, request.version, timeout=context.time_remaining())
        except TimeoutError:
            raise DeadlineExceeded(f"{request.adapter_alias}@{request.version} still draining") from None
        return inference_pb2.UnloadAdapterResponse()
