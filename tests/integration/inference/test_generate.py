"""Generate / GenerateStream / SubmitFeedback on the real engine; events on the real broker."""

from __future__ import annotations

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from driftloop.core.topics import FEEDBACK, PREDICTIONS
from driftloop.v1 import events_pb2
from driftloop.v1 import inference_pb2 as pb
from tests.integration.helpers import consume_until, metric, scrape

pytestmark = pytest.mark.integration


def test_generate_stream_feedback_and_events(inference_server, kafka_settings, unique) -> None:
    inf = inference_server.inference
    rid, sid = unique("gen"), unique("stream")
    r = inf.Generate(pb.GenerateRequest(request_id=rid, prompt="when does the bus leave the depot",
                                        tags={"client": "test"}), timeout=60)
    assert r.request_id == rid and r.text
    assert r.model == "tiny-llama" and r.finish_reason in ("stop", "length")
    assert r.usage.prompt_tokens > 0 and 0 < r.usage.completion_tokens <= 8
    assert r.usage.HasField("mean_token_logprob") and r.usage.mean_token_logprob < 0

    chunks = list(inf.GenerateStream(pb.GenerateRequest(
        request_id=sid, prompt="the tram passes", sampling=pb.SamplingParams(max_tokens=6)), timeout=60))
    assert chunks[0].model == "tiny-llama" and chunks[0].request_id == sid
    assert chunks[-1].finish_reason and 0 < chunks[-1].usage.completion_tokens <= 6
    assert "".join(c.text_delta for c in chunks)
    assert all(not c.finish_reason for c in chunks[:-1])

    fb = inf.SubmitFeedback(pb.SubmitFeedbackRequest(
        request_id=rid, rating=events_pb2.RATING_NEGATIVE, correction="Every ten minutes."), timeout=10)
    assert fb.feedback_id

    wanted = {rid, sid}
    events = consume_until(
        kafka_settings, [PREDICTIONS, FEEDBACK],
        {PREDICTIONS.name: events_pb2.PredictionEvent, FEEDBACK.name: events_pb2.FeedbackEvent},
        done=lambda got: len(got) >= 3, keep=lambda e: e.request_id in wanted,
    )
    preds = {e.request_id: e for e in events if isinstance(e, events_pb2.PredictionEvent)}
    feedback = [e for e in events if isinstance(e, events_pb2.FeedbackEvent)]
    assert set(preds) == wanted and len(events) == 3, events
    p = preds[rid]
    assert p.prompt == "when does the bus leave the depot" and p.completion == r.text
    assert p.model == "tiny-llama" and p.completion_tokens == r.usage.completion_tokens
    assert p.HasField("mean_token_logprob")
    # Time to first token is measured where a client sees one: on streams.
    assert not p.HasField("time_to_first_token_seconds") and preds[sid].HasField("time_to_first_token_seconds")
    assert p.latency_seconds > 0 and p.request_time.seconds > 0 and p.tags["client"] == "test"
    assert p.error_code == "" and p.replica
    assert preds[sid].stream and preds[sid].completion == "".join(c.text_delta for c in chunks)
    assert feedback[0].rating == events_pb2.RATING_NEGATIVE and feedback[0].correction == "Every ten minutes."
    assert feedback[0].feedback_id == fb.feedback_id

    samples = scrape(inference_server.metrics_url)
    assert metric(samples, "driftloop_inference_requests_total", method="Generate", code="OK") >= 1
    assert metric(samples, "driftloop_inference_time_to_first_token_seconds_count") >= 1
    assert metric(samples, "driftloop_events_emitted_total", topic=PREDICTIONS.name) >= 2


def test_unary_and_stream_give_the_same_text(inference_server) -> None:
    """A unary call is decoded once at the end (no per-token detokenizing in the engine), a stream
    token by token: same greedy request, same text, same counts — with and without stop strings."""
    inf = inference_server.inference
    for i, stop in enumerate([[], ["e"]]):
        req = pb.GenerateRequest(prompt=f"the airport bus runs {i}",
                                 sampling=pb.SamplingParams(max_tokens=24, temperature=0.0, stop=stop))
        unary = inf.Generate(req, timeout=60)
        chunks = list(inf.GenerateStream(req, timeout=60))
        assert unary.text == "".join(c.text_delta for c in chunks)
        assert unary.finish_reason == chunks[-1].finish_reason
        assert unary.usage.completion_tokens == chunks[-1].usage.completion_tokens
        assert unary.usage.mean_token_logprob == pytest.approx(chunks[-1].usage.mean_token_logprob, abs=1e-4)


def test_health_and_reflection(inference_server) -> None:
    health = health_pb2_grpc.HealthStub(inference_server.channel)
    for service in ("", "driftloop.v1.Inference", "driftloop.v1.AdapterAdmin"):
        resp = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
        assert resp.status == health_pb2.HealthCheckResponse.SERVING
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    stub = reflection_pb2_grpc.ServerReflectionStub(inference_server.channel)
    responses = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]),
                                          timeout=5)
    names = {s.name for r in responses for s in r.list_services_response.service}
    assert {"driftloop.v1.Inference", "driftloop.v1.AdapterAdmin", "grpc.health.v1.Health"} <= names


def test_cancelled_stream_aborts_and_is_recorded(inference_server, kafka_settings, unique) -> None:
    rid = unique("cancel")
    call = inference_server.inference.GenerateStream(pb.GenerateRequest(
        request_id=rid, prompt="the bus", sampling=pb.SamplingParams(max_tokens=64)), timeout=60)
    next(call)
    call.cancel()
    with pytest.raises(grpc.RpcError) as info:
        list(call)
    assert info.value.code() == grpc.StatusCode.CANCELLED
    events = consume_until(kafka_settings, [PREDICTIONS], {PREDICTIONS.name: events_pb2.PredictionEvent},
                           done=lambda got: len(got) >= 1, keep=lambda e: e.request_id == rid)
    assert len(events) == 1
    # Either the client's cancel reached the server mid-generation, or generation had already finished.
    assert events[0].finish_reason in ("abort", "length", "stop")
    if events[0].finish_reason == "abort":
        assert events[0].error_code == "CANCELLED"
    r = inference_server.inference.Generate(pb.GenerateRequest(prompt="the bus"), timeout=60)
    assert r.text


def test_base_requests_unaffected_by_concurrent_lora(inference_server) -> None:
    """Base-model requests batched with LoRA requests must equal their solo output (the CPU LoRA
    ops applied the last slot's adapter to them before driftloop's worker fix)."""
    from concurrent.futures import ThreadPoolExecutor

    from tests.integration.inference.conftest import ADMIN_MD

    inf, admin = inference_server.inference, inference_server.admin
    admin.LoadAdapter(pb.LoadAdapterRequest(adapter_alias="mix", version="v1", path="transit-qa/v1"),
                      metadata=ADMIN_MD, timeout=60)
    admin.SetRoute(pb.SetRouteRequest(adapter_alias="mix", stable_version="v1"), metadata=ADMIN_MD, timeout=10)
    greedy = pb.SamplingParams(max_tokens=24, min_tokens=24, temperature=0.0)
    prompts = [f"does route {i} stop at the harbour" for i in range(4)]
    solo = {p: inf.Generate(pb.GenerateRequest(prompt=p, sampling=greedy), timeout=60).text for p in prompts}
    lora_solo = inf.Generate(pb.GenerateRequest(prompt=prompts[0], adapter_alias="mix", sampling=greedy),
                             timeout=60).text
    assert lora_solo != solo[prompts[0]]  # the adapter changes the output

    def call(args):
        prompt, alias = args
        return prompt, alias, inf.Generate(pb.GenerateRequest(prompt=prompt, adapter_alias=alias, sampling=greedy),
                                           timeout=60).text

    jobs = [(p, alias) for p in prompts for alias in ("", "mix", "mix")]
    with ThreadPoolExecutor(len(jobs)) as pool:
        results = list(pool.map(call, jobs))
    for prompt, alias, text in results:
        if not alias:
            assert text == solo[prompt], "a base request picked up an adapter while batched with LoRA requests"
    assert all(text == lora_solo for prompt, alias, text in results if alias and prompt == prompts[0])
