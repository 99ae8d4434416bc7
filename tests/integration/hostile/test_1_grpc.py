"""Hostile calls at the gRPC boundary, with the real client library: each gets its status code with
a short message that never echoes the input, and the server stays healthy. Client mistakes never
become model health (checked on the monitor in test_3_loop_afterwards)."""

from __future__ import annotations

import threading
import time
import uuid

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from driftloop.core.topics import PREDICTIONS
from driftloop.v1 import events_pb2
from driftloop.v1 import inference_pb2 as pb
from tests.integration.helpers import consume_until
from tests.integration.inference.conftest import ADMIN_MD

pytestmark = pytest.mark.integration

INVALID, NOT_FOUND = grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND
HUGE = "a" * (1 << 20)
HOSTILE_GENERATE = [
    ("1 MiB alias", pb.GenerateRequest(prompt="x", adapter_alias=HUGE), INVALID),
    ("alias with a path", pb.GenerateRequest(prompt="x", adapter_alias="../../etc/passwd"), INVALID),
    ("alias with a NUL", pb.GenerateRequest(prompt="x", adapter_alias="transit-qa\x00"), INVALID),
    ("1 MiB version", pb.GenerateRequest(prompt="x", adapter_alias="transit-qa", adapter_version=HUGE), INVALID),
    ("version '..'", pb.GenerateRequest(prompt="x", adapter_alias="transit-qa", adapter_version=".."), INVALID),
    ("1 MiB prompt", pb.GenerateRequest(prompt=HUGE), INVALID),
    ("1 MiB request id", pb.GenerateRequest(prompt="x", request_id=HUGE), INVALID),
    ("request id with a newline", pb.GenerateRequest(prompt="x", request_id="id\nFORGED"), INVALID),
    ("1 MiB tag value", pb.GenerateRequest(prompt="x", tags={"k": HUGE}), INVALID),
    ("1 MiB tag key", pb.GenerateRequest(prompt="x", tags={HUGE: "v"}), INVALID),
    ("1000 tags", pb.GenerateRequest(prompt="x", tags={f"k{i}": "v" for i in range(1000)}), INVALID),
    ("stop string of 1 MiB", pb.GenerateRequest(prompt="x", sampling=pb.SamplingParams(stop=[HUGE])), INVALID),
    ("reserved tag source=retrainer-gate", pb.GenerateRequest(prompt="x", tags={"source": "retrainer-gate"}),
     grpc.StatusCode.PERMISSION_DENIED),
    ("reserved tag source=evaluation", pb.GenerateRequest(prompt="x", tags={"source": "evaluation"}),
     grpc.StatusCode.PERMISSION_DENIED),
    ("chat: 1 MiB message", pb.GenerateRequest(messages=[events_pb2.ChatMessage(role="user", content=HUGE)]), INVALID),
    ("chat: 10,000 messages", pb.GenerateRequest(messages=[events_pb2.ChatMessage(role="user", content="x")] * 10_000),
     INVALID),
    ("chat: 1 MiB role", pb.GenerateRequest(messages=[events_pb2.ChatMessage(role=HUGE, content="x")]), INVALID),
    ("chat: role 'tool'", pb.GenerateRequest(messages=[events_pb2.ChatMessage(role="tool", content="x")]), INVALID),
    ("chat: only blank turns", pb.GenerateRequest(messages=[events_pb2.ChatMessage(role="user", content=" \n")] * 3),
     INVALID),
    ("chat: prompt and messages", pb.GenerateRequest(prompt="x", messages=[events_pb2.ChatMessage(role="user",
                                                                                        content="x")]), INVALID),
    ("invented alias", pb.GenerateRequest(prompt="x", adapter_alias="invented-alias"), NOT_FOUND),
    ("pinned version that does not exist", pb.GenerateRequest(prompt="x", adapter_alias="invented-alias",
                                                              adapter_version="v999"), NOT_FOUND),
]
HOSTILE_FEEDBACK = [
    ("2 MB correction", pb.SubmitFeedbackRequest(request_id="r1", rating=2, correction="c" * 2_000_000), INVALID),
    ("2 MB comment", pb.SubmitFeedbackRequest(request_id="r1", rating=2, comment="c" * 2_000_000), INVALID),
    ("1 MiB request id", pb.SubmitFeedbackRequest(request_id=HUGE, rating=1), INVALID),
    ("request id with a path", pb.SubmitFeedbackRequest(request_id="../../x", rating=1), INVALID),
    ("rating out of range", pb.SubmitFeedbackRequest(request_id="r1", rating=7), INVALID),
    ("reserved tag", pb.SubmitFeedbackRequest(request_id="r1", rating=1, tags={"source": "retrainer-gate"}),
     grpc.StatusCode.PERMISSION_DENIED),
]


def assert_healthy(server) -> None:
    health = health_pb2_grpc.HealthStub(server.channel)
    assert health.Check(health_pb2.HealthCheckRequest(), timeout=5).status == health_pb2.HealthCheckResponse.SERVING
    assert server.inference.Generate(pb.GenerateRequest(prompt="the bus leaves"), timeout=60).text is not None


def assert_refused(info: pytest.ExceptionInfo, code: grpc.StatusCode, case: str) -> None:
    assert info.value.code() == code, (case, info.value.code(), info.value.details()[:300])
    details = info.value.details() or ""
    assert details and len(details) < 300, (case, details[:300])  # clear, and never the input echoed back
    assert "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" not in details


@pytest.mark.parametrize(("case", "request_", "code"), HOSTILE_GENERATE, ids=[c[0] for c in HOSTILE_GENERATE])
@pytest.mark.parametrize("method", ["Generate", "GenerateStream"])
def test_hostile_generate(loop, inference_server, case, request_, code, method) -> None:
    loop.case(f"{method}: {case}")
    with pytest.raises(grpc.RpcError) as info:
        if method == "Generate":
            inference_server.inference.Generate(request_, timeout=30)
        else:
            list(inference_server.inference.GenerateStream(request_, timeout=30))
    assert_refused(info, code, case)
    assert_healthy(inference_server)


@pytest.mark.parametrize(("case", "request_", "code"), HOSTILE_FEEDBACK, ids=[c[0] for c in HOSTILE_FEEDBACK])
def test_hostile_feedback(loop, inference_server, case, request_, code) -> None:
    loop.case(f"SubmitFeedback: {case}")
    with pytest.raises(grpc.RpcError) as info:
        inference_server.inference.SubmitFeedback(request_, timeout=30)
    assert_refused(info, code, case)
    assert_healthy(inference_server)


def test_template_syntax_in_a_message_is_only_text(loop, inference_server, kafka_settings) -> None:
    """Message contents are data to the chat template, never template code: Jinja in them is not run
    (a loop of 10^9 would hang the server) and reaches the model and the event as written."""
    loop.case("Generate: Jinja in a chat message")
    rid = f"{loop.run}-jinja"
    content = "{{ 7 * 7 }}{% for i in range(10**9) %}x{% endfor %}{{ raise_exception('boom') }}"
    r = inference_server.inference.Generate(pb.GenerateRequest(
        request_id=rid, messages=[events_pb2.ChatMessage(role="user", content=content)],
        sampling=pb.SamplingParams(max_tokens=4)), timeout=60)
    assert r.usage.prompt_tokens > 20
    (ev,) = consume_until(kafka_settings, [PREDICTIONS], {PREDICTIONS.name: events_pb2.PredictionEvent},
                          done=lambda got: len(got) >= 1, keep=lambda e: e.request_id == rid, timeout=60)
    assert content in ev.prompt and "49" not in ev.prompt and ev.messages[0].content == content
    assert_healthy(inference_server)


def test_a_message_over_the_transport_limit_is_refused(loop, inference_server) -> None:
    loop.case("Generate: 5 MiB message")
    with pytest.raises(grpc.RpcError) as info:
        inference_server.inference.Generate(pb.GenerateRequest(prompt="p" * (5 << 20)), timeout=30)
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert_healthy(inference_server)


def test_admin_is_closed_without_the_token_and_refuses_paths_outside_the_root(loop, inference_server) -> None:
    admin = inference_server.admin
    for case, call in [
        ("ListAdapters without token",
         lambda md: admin.ListAdapters(pb.ListAdaptersRequest(), metadata=md, timeout=10)),
        ("LoadAdapter without token", lambda md: admin.LoadAdapter(pb.LoadAdapterRequest(
            adapter_alias="x", version="v1", path="transit-qa/v1"), metadata=md, timeout=10)),
        ("SetRoute with a wrong token", lambda md: admin.SetRoute(pb.SetRouteRequest(
            adapter_alias="transit-qa", stable_version="v1"), metadata=(("authorization", "Bearer nope"),),
            timeout=10)),
    ]:
        loop.case(f"admin: {case}")
        with pytest.raises(grpc.RpcError) as info:
            call(())
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED, case
    for case, path in [("path traversal", "../outside-the-adapter-root"), ("absolute path", "/etc"),
                       ("1 MiB path", HUGE)]:
        loop.case(f"LoadAdapter: {case}")
        with pytest.raises(grpc.RpcError) as info:
            admin.LoadAdapter(pb.LoadAdapterRequest(adapter_alias="hostile", version="v1", path=path),
                              metadata=ADMIN_MD, timeout=30)
        assert_refused(info, INVALID, case)
    assert (loop.outside / "sentinel").read_text() == "untouched"
    assert_healthy(inference_server)


def test_reserved_tags_are_honoured_from_the_loop_itself(loop, inference_server, kafka_settings) -> None:
    """With the admin token the tag is accepted and reaches the event (the monitor ignores it)."""
    loop.case("Generate: reserved tag with the admin token")
    rid = f"{loop.run}-evaluation"
    inference_server.inference.Generate(pb.GenerateRequest(prompt="x", request_id=rid, tags={"source": "evaluation"}),
                                        metadata=ADMIN_MD, timeout=60)
    (ev,) = consume_until(kafka_settings, [PREDICTIONS], {PREDICTIONS.name: events_pb2.PredictionEvent},
                          done=lambda got: len(got) >= 1, keep=lambda e: e.request_id == rid, timeout=60)
    assert ev.tags["source"] == "evaluation" and not ev.pinned


def test_client_deadlines_and_cancels_are_client_errors(loop, inference_server, kafka_settings) -> None:
    """A client's own tiny deadline or cancel is its choice: the event says so (the monitor then never
    counts it as an error; checked in test_3)."""
    ids = [f"{loop.run}-deadline-{i}" for i in range(30)]
    for rid in ids:
        loop.case("Generate: 1 ms client deadline")
        with pytest.raises(grpc.RpcError) as info:
            inference_server.inference.Generate(pb.GenerateRequest(
                prompt="a long question " * 20, request_id=rid,
                sampling=pb.SamplingParams(max_tokens=64, min_tokens=64)),
                timeout=0.001)
        assert info.value.code() in (grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED)
    cancelled = [f"{loop.run}-cancel-{i}" for i in range(10)]
    for rid in cancelled:
        loop.case("GenerateStream: cancelled by the client after the first chunk")
        call = inference_server.inference.GenerateStream(pb.GenerateRequest(
            prompt="tell me", request_id=rid, sampling=pb.SamplingParams(max_tokens=64, min_tokens=64)), timeout=30)
        next(call)
        call.cancel()
    time.sleep(2)
    wanted = set(ids) | set(cancelled)
    events = consume_until(kafka_settings, [PREDICTIONS], {PREDICTIONS.name: events_pb2.PredictionEvent},
                           done=lambda got: {e.request_id for e in got} >= set(cancelled),
                           keep=lambda e: e.request_id in wanted, timeout=60)
    failed = [e for e in events if e.error_code]  # a cancel that came after the last token is a success
    assert failed and all(e.error_source == events_pb2.ERROR_SOURCE_CLIENT for e in failed), \
        [(e.request_id, e.error_code, e.error_source) for e in failed][:5]
    assert_healthy(inference_server)


def test_feedback_repeated_for_one_request_is_one_verdict(loop, inference_server) -> None:
    """Sent any number of times, a request's feedback counts once in the monitor (the latest verdict)."""
    r = inference_server.inference.Generate(pb.GenerateRequest(prompt="how often", request_id=f"{loop.run}-fb"),
                                            timeout=60)
    before = loop.monitor_metric("driftloop_monitor_events_total", topic="driftloop.feedback.v1",
                                 result="processed")
    for _ in range(10):
        loop.case("SubmitFeedback: the same verdict again")
        inference_server.inference.SubmitFeedback(pb.SubmitFeedbackRequest(
            request_id=r.request_id, rating=events_pb2.RATING_NEGATIVE), timeout=10)
    loop.wait_monitor("driftloop_monitor_events_total", before + 10, topic="driftloop.feedback.v1",
                      result="processed")
    loop.wait_monitor("driftloop_monitor_feedback_total", 1, model="tiny-llama", adapter_alias="", rating="negative")
    time.sleep(2)
    assert loop.monitor_metric("driftloop_monitor_feedback_total", model="tiny-llama", adapter_alias="",
                               rating="negative") == 1


def test_a_flood_of_concurrent_calls_leaves_the_server_serving(loop, inference_server) -> None:
    loop.case("Generate: 200 concurrent calls")
    errors: list[grpc.StatusCode] = []

    def one(i: int) -> None:
        try:
            inference_server.inference.Generate(pb.GenerateRequest(
                prompt=f"q {i}", request_id=f"flood-{uuid.uuid4().hex}", sampling=pb.SamplingParams(max_tokens=4)),
                timeout=120)
        except grpc.RpcError as exc:
            errors.append(exc.code())

    threads = [threading.Thread(target=one, args=(i,)) for i in range(200)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(180)
    assert set(errors) <= {grpc.StatusCode.RESOURCE_EXHAUSTED}, errors[:5]
    assert_healthy(inference_server)
