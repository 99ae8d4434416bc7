"""The gRPC handlers, the data plane and the error interceptor with a fake engine and a fake event
sink, called through a real in-process gRPC server with the real grpcio client (no model, no Kafka).
The same paths on the real vLLM engine: tests/integration/inference."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from driftloop.core.topics import FEEDBACK
from driftloop.inference.auth import AdminAuth
from driftloop.inference.interceptor import ErrorInterceptor
from driftloop.inference.servicer import InferenceServicer
from driftloop.v1 import events_pb2, inference_pb2_grpc
from driftloop.v1 import inference_pb2 as pb
from tests.unit.inference.fakes import PlaneHarness, S


class Harness(PlaneHarness):
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


def test_chat_messages_are_rendered_once_and_carried_in_the_event(h: Harness) -> None:
    msgs = [events_pb2.ChatMessage(role="system", content="be brief"),
            events_pb2.ChatMessage(role="user", content="when?")]
    resp = run(h, lambda stub: stub.Generate(pb.GenerateRequest(messages=msgs)))
    assert resp.text == "a b c" and resp.usage.prompt_tokens == 6  # 6 words rendered, no special token added
    [ev] = h.events()
    assert ev.prompt == "system: be brief\nuser: when?\nassistant:"
    assert [(m.role, m.content) for m in ev.messages] == [("system", "be brief"), ("user", "when?")]


@pytest.mark.parametrize("req,why", [
    (pb.GenerateRequest(prompt="hi", messages=[events_pb2.ChatMessage(role="user", content="x")]), "not both"),
    (pb.GenerateRequest(messages=[events_pb2.ChatMessage(role="tool", content="x")]), "role"),
    (pb.GenerateRequest(messages=[events_pb2.ChatMessage(role="user", content=" ")]), "empty"),
    (pb.GenerateRequest(messages=[events_pb2.ChatMessage(role="user", content="x")] * 65), "limit"),
    (pb.GenerateRequest(messages=[events_pb2.ChatMessage(role="user", content="x" * 4001)]), "limit"),
    (pb.GenerateRequest(messages=[events_pb2.ChatMessage(role="user", content="x"),
                                  events_pb2.ChatMessage(role="assistant", content="refuse")]), "refused"),
])
def test_bad_conversations_are_invalid_and_never_an_event(h: Harness, req, why: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        run(h, lambda stub: stub.Generate(req))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and why in err.value.details()
    assert len(err.value.details()) < 300 and h.events() == []


def test_long_chat_contents_are_cut_in_the_event_and_named(h: Harness) -> None:
    from driftloop.inference.dataplane import ChatMessage, GenerationRequest, Outcome
    from driftloop.inference.events import EVENT_MAX_TEXT_CHARS, prediction_event

    req = GenerationRequest(messages=(ChatMessage("user", "y" * (EVENT_MAX_TEXT_CHARS + 5)),))
    ev = prediction_event(req, Outcome(request_id="r", started=0.0, prompt="p"), S)
    assert len(ev.messages[0].content) == EVENT_MAX_TEXT_CHARS and "messages" in ev.truncated_fields
