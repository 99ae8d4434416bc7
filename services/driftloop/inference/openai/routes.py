"""The OpenAI-compatible endpoints: each handler turns a body into the data plane's request and its
outcome into OpenAI's response shape — translation only, like ``servicer.py`` for gRPC.

``POST /v1/chat/completions``, ``POST /v1/completions`` (both stream as server-sent events),
``GET /v1/models`` (the base model, each alias and each ``alias@version``), and driftloop's own
``POST /v1/feedback`` (feedback on an earlier response, by its ``id``). A response's ``id`` is the
request id (a client may choose it with an ``X-Request-Id`` header); ``model`` names what served
it (``alias@version``, or the base model). The admin token (``Authorization: Bearer …``) is only
needed for the reserved tags, as on gRPC; any other bearer (an SDK's API key) is accepted.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse

from driftloop.core.metrics import InferenceMetrics
from driftloop.inference.adapters import AdapterRegistry
from driftloop.inference.auth import AdminAuth
from driftloop.inference.dataplane import Chunk, DataPlane, GenerationRequest, Outcome
from driftloop.inference.engine.base import DETOKENIZE_CONTEXT
from driftloop.inference.errors import InferenceError
from driftloop.inference.openai import errors
from driftloop.inference.openai.schemas import ChatCompletionBody, CompletionBody, FeedbackBody

log = logging.getLogger(__name__)


def usage(out: Outcome) -> dict[str, int]:
    return {"prompt_tokens": out.prompt_tokens, "completion_tokens": out.completion_tokens,
            "total_tokens": out.prompt_tokens + out.completion_tokens}


class Translator:
    """Outcome → OpenAI objects, for one kind of endpoint (chat or text completion). ``token_texts``:
    token ids → their text (the engine's tokenizer), for ``logprobs``."""

    def __init__(self, chat: bool, base_model: str, token_texts: Callable[..., list[str]]) -> None:
        self.chat = chat
        self.base_model = base_model
        self.object = "chat.completion" if chat else "text_completion"
        self.token_texts = token_texts

    def logprobs(self, req: GenerationRequest, out: Outcome, tokens: Sequence[tuple[int, float]] | None = None
                 ) -> dict[str, Any] | None:
        """The logprobs of the sampled ``tokens`` (default: all of them; a stream's chunk: its own, the
        last of ``out``'s) in OpenAI's shape (chat: ``content``; completions: the legacy lists), or
        None when the request did not ask. No alternatives (``top_logprobs``) are computed."""
        if not req.sampling.logprobs:
            return None
        tokens = out.token_logprobs if tokens is None else tokens
        end = len(out.token_logprobs) - len(tokens)
        before = [t for t, _ in out.token_logprobs[max(0, end - DETOKENIZE_CONTEXT): end]]
        texts = self.token_texts([t for t, _ in tokens], before)
        if self.chat:
            return {"content": [{"token": s, "logprob": lp, "bytes": list(s.encode()), "top_logprobs": []}
                                for s, (_, lp) in zip(texts, tokens, strict=True)]}
        offsets, at = [], 0
        for s in texts:
            offsets.append(at)
            at += len(s)
        return {"tokens": texts, "token_logprobs": [lp for _, lp in tokens], "top_logprobs": None,
                "text_offset": offsets}

    def served(self, req: GenerationRequest, out: Outcome) -> str:
        return f"{req.adapter_alias}@{out.adapter_version}" if req.adapter_alias else self.base_model

    def _head(self, req: GenerationRequest, out: Outcome, obj: str) -> dict[str, Any]:
        return {"id": out.request_id, "object": obj, "created": int(out.started), "model": self.served(req, out)}

    def response(self, req: GenerationRequest, out: Outcome) -> dict[str, Any]:
        text = "".join(out.text)
        choice: dict[str, Any] = {"index": 0, "finish_reason": out.finish_reason,
                                  "logprobs": self.logprobs(req, out)}
        choice |= {"message": {"role": "assistant", "content": text}} if self.chat else {"text": text}
        return self._head(req, out, self.object) | {"choices": [choice], "usage": usage(out)}

    def chunk(self, req: GenerationRequest, chunk: Chunk, first: bool) -> dict[str, Any]:
        out = chunk.outcome
        finish = out.finish_reason or None
        if self.chat:
            delta = {"role": "assistant", "content": chunk.delta} if first else {"content": chunk.delta}
            choice = {"index": 0, "delta": delta, "finish_reason": finish,
                      "logprobs": self.logprobs(req, out, chunk.token_logprobs)}
            return self._head(req, out, "chat.completion.chunk") | {"choices": [choice]}
        choice = {"index": 0, "text": chunk.delta, "finish_reason": finish,
                  "logprobs": self.logprobs(req, out, chunk.token_logprobs)}
        return self._head(req, out, "text_completion") | {"choices": [choice]}

    def usage_chunk(self, req: GenerationRequest, out: Outcome) -> dict[str, Any]:
        obj = "chat.completion.chunk" if self.chat else "text_completion"
        return self._head(req, out, obj) | {"choices": [], "usage": usage(out)}


def sse(data: Any) -> str:
    return f"data: {data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)}\n\n"


def build_app(plane: DataPlane, registry: AdapterRegistry, auth: AdminAuth, metrics: InferenceMetrics) -> FastAPI:
    app = FastAPI(title="driftloop OpenAI-compatible API", docs_url=None, redoc_url=None, openapi_url=None)
    errors.install(app, metrics)
    base_model = plane.s.model_name
    chat, text = (Translator(kind, base_model, plane.engine.token_texts) for kind in (True, False))

    def admitted(request: Request) -> bool:
        return auth.admitted([("authorization", request.headers.get("authorization", ""))])

    def request_id(request: Request) -> str:
        return request.headers.get("x-request-id", "")

    async def generate(req: GenerationRequest, body, request: Request, translator: Translator):
        if not req.stream:
            out = await plane.generate(req, admitted(request))
            return JSONResponse(translator.response(req, out))
        steps = plane.stream(req, admitted(request))
        try:  # the first step before any header: a refusal still gets its own HTTP status
            first = await anext(steps)
        except StopAsyncIteration:  # pragma: no cover - the data plane always yields or raises
            raise InferenceError("no output") from None
        return StreamingResponse(events(req, steps, first, translator, body.include_usage()),
                                 media_type="text/event-stream", headers={"Cache-Control": "no-cache"})

    async def events(req: GenerationRequest, steps: AsyncIterator[Chunk], first: Chunk, translator: Translator,
                     include_usage: bool) -> AsyncIterator[str]:
        chunk = first
        try:
            yield sse(translator.chunk(req, chunk, first=True))
            async for chunk in steps:
                if chunk.delta or chunk.outcome.finish_reason:
                    yield sse(translator.chunk(req, chunk, first=False))
            if include_usage:
                yield sse(translator.usage_chunk(req, chunk.outcome))
        except InferenceError as exc:  # headers are gone: the error travels as an event, as vLLM's does
            yield sse(errors.for_domain_error(exc)[1])
        except Exception as exc:
            log.error("stream %s failed unexpectedly", chunk.outcome.request_id, exc_info=exc)
            metrics.unexpected_errors.labels("http_stream").inc()
            yield sse(errors.body(f"internal error: {type(exc).__name__}", "internal_error"))
        finally:
            await steps.aclose()  # a client that went away cancels the engine request
        yield sse("[DONE]")

    @app.post("/v1/chat/completions")
    async def chat_completions(body: ChatCompletionBody, request: Request):
        return await generate(body.request(base_model, request_id(request)), body, request, chat)

    @app.post("/v1/completions")
    async def completions(body: CompletionBody, request: Request):
        return await generate(body.request(base_model, request_id(request)), body, request, text)

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        ids = [base_model]
        for r in registry.routes():
            ids.append(r.alias)
        ids += [f"{v.alias}@{v.version}" for v in registry.versions()]
        return {"object": "list", "data": [{"id": i, "object": "model", "created": 0, "owned_by": "driftloop"}
                                           for i in ids]}

    @app.post("/v1/feedback")
    async def feedback(body: FeedbackBody, request: Request) -> dict[str, Any]:
        return {"id": plane.submit_feedback(body.request(), admitted(request)), "object": "feedback"}

    return app
