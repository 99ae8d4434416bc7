"""The gRPC handlers, the data plane and the error interceptor with a fake engine and a fake event
sink, called through a real in-process gRPC server with the real grpcio client (no model, no Kafka).
The same paths on the real vLLM engine: tests/integration/inference."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
import pytest
from prometheus_client import CollectorRegistry

from driftloop.core.metrics import InferenceMetrics
from driftloop.core.topics import FEEDBACK, PREDICTIONS
from driftloop.inference.adapters import AdapterRegistry
from driftloop.inference.auth import AdminAuth
from driftloop.inference.dataplane import DataPlane
from driftloop.inference.engine.base import Engine, GenerationParams, LoraHandle, Step
from driftloop.inference.events import EventPublisher
from driftloop.inference.interceptor import ErrorInterceptor
from driftloop.inference.servicer import InferenceServicer
from driftloop.inference.settings import InferenceSettings
from driftloop.v1 import events_pb2, inference_pb2_grpc
from driftloop.v1 import inference_pb2 as pb

S = InferenceSettings(model_name="fake", admin_token="t", default_deadline_s=5.0, replica="r1")


class FakeEngine(Engine):
    """Answers "a b c" one word a step; ``fail`` raises mid-stream, ``delay`` sleeps per step."""

    model_name, max_model_len, max_lora_rank, kind = "fake", 512, 8, "fake"

    def __init__(self) -> None:
        self.fail: Exception | None = None
        self.delay = 0.0

    async def start(self) -> None: ...
    async def shutdown(self) -> None: ...
    async def add_lora(self, lora: LoraHandle) -> None: ...
    async def remove_lora(self, lora: LoraHandle) -> None: ...

    def lora_target_modules(self) -> frozenset[str]:
        return frozenset({"q_proj"})

    def count_tokens(self, prompt: str) -> int:
        return len(prompt.split())

    async def generate(self, request_id: str, prompt: str, params: GenerationParams,
                       lora: LoraHandle | None) -> AsyncIterator[Step]:
        words = ["a", " b", " c"]
        for i, w in enumerate(words, 1):
            await asyncio.sleep(self.delay)
            if self.fail is not None and i == 2:
                raise self.fail
            yield Step(w, self.count_tokens(prompt), i, -0.5 * i, "stop" if i == len(words) else None)


class FakeEmitter:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str, object]] = []

    def emit(self, topic, key: str, event) -> None:
        self.sent.append((topic.name, key, event))


class Harness:
    def __init__(self, tmp_path) -> None:
        self.engine = FakeEngine()
        self.emitter = FakeEmitter()
        self.prom = CollectorRegistry()
        self.metrics = InferenceMetrics(self.prom, S.model_name)

        async def noop(v) -> None: ...
        self.registry = AdapterRegistry(tmp_path, 8, {"q_proj"}, noop, noop)
        self.plane = DataPlane(S, self.engine, self.registry, self.metrics, EventPublisher(self.emitter, S))

    def value(self, name: str, **labels: str) -> float:
        return self.prom.get_sample_value(name, labels) or 0.0

    def requests(self, code: str, method: str = "Generate") -> float:
        return self.value("driftloop_inference_requests_total", method=method, model="fake", adapter_alias="",
                          code=code)

    def events(self, topic: str = PREDICTIONS.name) -> list:
        return [e for t, _, e in self.emitter.sent if t == topic]

    async def call(self, fn):
        server = grpc.aio.server(interceptors=[ErrorInterceptor(self.metrics)])
        inference_pb2_grpc.add_InferenceServicer_to_server(InferenceServicer(self.plane, AdminAuth("t")), server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                return await fn(inference_pb2_grpc.InferenceStub(channel))
        finally:
            await server.stop(None)


def run(h: Harness, fn):
    return asyncio.run(h.call(fn))


@pytest.fixture
def h(tmp_path) -> Harness:
    return Harness(tmp_path)


def test_generate_answers_counts_and_publishes_one_event(h: Harness) -> None:
    resp = run(h, lambda stub: stub.Generate(pb.GenerateRequest(prompt="Q: x\nA:", request_id="r-1",
                                                                tags={"client": "t"})))
    assert (resp.request_id, resp.text, resp.finish_reason, resp.model) == ("r-1", "a b c", "stop", "fake")
    assert resp.usage.completion_tokens == 3 and resp.usage.mean_token_logprob == pytest.approx(-0.5)
    [ev] = h.events()
    assert (ev.request_id, ev.completion, ev.error_code, ev.replica, ev.tags["client"]) == ("r-1", "a b c", "", "r1",
                                                                                          "t")
    assert ev.mean_token_logprob == pytest.approx(resp.usage.mean_token_logprob)
    assert h.requests("OK") == 1 and h.value("driftloop_inference_in_flight_requests", model="fake") == 0


def test_stream_sends_deltas_then_usage_and_marks_the_event(h: Harness) -> None:
    async def stream(stub):
        return [m async for m in stub.GenerateStream(pb.GenerateRequest(prompt="hi"))]

    msgs = run(h, stream)
    assert "".join(m.text_delta for m in msgs) == "a b c" and msgs[0].model == "fake"
    assert msgs[-1].finish_reason == "stop" and msgs[-1].usage.completion_tokens == 3
    [ev] = h.events()
    assert ev.stream and h.requests("OK", "GenerateStream") == 1


def test_a_bad_request_is_refused_counted_and_never_an_event(h: Harness) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        run(h, lambda stub: stub.Generate(pb.GenerateRequest(prompt="  ")))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "prompt is empty" in err.value.details()
    assert h.requests("INVALID_ARGUMENT") == 1 and h.events() == []


def test_an_unknown_alias_is_not_found_and_never_an_event(h: Harness) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        run(h, lambda stub: stub.Generate(pb.GenerateRequest(prompt="hi", adapter_alias="nope")))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND and h.events() == []


def test_an_engine_error_is_internal_everywhere_and_counted_once(h: Harness) -> None:
    h.engine.fail = RuntimeError("secret prompt text")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        run(h, lambda stub: stub.Generate(pb.GenerateRequest(prompt="hi")))
    # The client, the metric and the event all say INTERNAL (an unmapped error used to answer UNKNOWN).
    assert err.value.code() == grpc.StatusCode.INTERNAL and "secret" not in err.value.details()
    [ev] = h.events()
    assert ev.error_code == "INTERNAL" and ev.error_source == events_pb2.ERROR_SOURCE_SERVER
    assert ev.completion == "a"  # what was generated before the failure
    assert h.requests("INTERNAL") == 1
    assert h.value("driftloop_inference_unexpected_errors_total", method="Generate") == 0  # counted once


def test_a_client_deadline_is_the_clients_failure(h: Harness) -> None:
    h.engine.delay = 0.3
    with pytest.raises(grpc.aio.AioRpcError) as err:
        run(h, lambda stub: stub.Generate(pb.GenerateRequest(prompt="hi"), timeout=0.5))
    assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    for _ in range(50):  # the server side ends just after the client gave up
        if h.events():
            break
        asyncio.run(asyncio.sleep(0.05))
    [ev] = h.events()
    assert ev.error_source == events_pb2.ERROR_SOURCE_CLIENT and ev.finish_reason == "abort"


def test_reserved_tags_need_the_token_on_the_call(h: Harness) -> None:
    req = pb.GenerateRequest(prompt="hi", tags={"source": "evaluation"})
    with pytest.raises(grpc.aio.AioRpcError) as err:
        run(h, lambda stub: stub.Generate(req))
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    resp = run(h, lambda stub: stub.Generate(req, metadata=[("authorization", "Bearer t")]))
    assert resp.text == "a b c" and h.events()[0].tags["source"] == "evaluation"


def test_feedback_is_validated_counted_and_published(h: Harness) -> None:
    resp = run(h, lambda stub: stub.SubmitFeedback(pb.SubmitFeedbackRequest(request_id="r-1", rating=2,
                                                                             correction="x" * 20)))
    [ev] = h.events(FEEDBACK.name)
    assert ev.feedback_id == resp.feedback_id and ev.correction == "x" * 20
    assert h.value("driftloop_inference_feedback_total", rating="negative") == 1
    with pytest.raises(grpc.aio.AioRpcError) as err:
        run(h, lambda stub: stub.SubmitFeedback(pb.SubmitFeedbackRequest(request_id="r-2")))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_a_bug_in_a_handler_is_internal_logged_and_counted(h: Harness, monkeypatch, caplog) -> None:
    def broken(*args, **kwargs):
        raise KeyError("request data")

    monkeypatch.setattr(h.plane, "submit_feedback", broken)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        run(h, lambda stub: stub.SubmitFeedback(pb.SubmitFeedbackRequest(request_id="r-1", rating=1)))
    assert err.value.code() == grpc.StatusCode.INTERNAL and err.value.details() == "internal error: KeyError"
    assert h.value("driftloop_inference_unexpected_errors_total", method="SubmitFeedback") == 1
    assert "SubmitFeedback failed unexpectedly" in caplog.text
