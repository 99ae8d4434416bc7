"""The OpenAI-compatible listener driven by the real ``openai`` Python client, on the real engine:
chat and text completions (unary and streamed), models, errors as the SDK's own exceptions, and
feedback by a response's id — with the events on the real broker and the metrics labelled http."""

from __future__ import annotations

import httpx
import openai
import pytest

from driftloop.core.topics import FEEDBACK, PREDICTIONS
from driftloop.v1 import events_pb2
from driftloop.v1 import inference_pb2 as pb
from tests.integration.helpers import consume_until, metric, scrape
from tests.integration.inference.conftest import ADMIN_MD, ADMIN_TOKEN

pytestmark = pytest.mark.integration
MODEL = "tiny-llama"  # the base model's name (DRIFTLOOP_INFERENCE_MODEL_NAME)
CHAT = [{"role": "system", "content": "answer briefly"}, {"role": "user", "content": "how often is route 4"}]


@pytest.fixture
def client(inference_server) -> openai.OpenAI:
    return openai.OpenAI(base_url=inference_server.http_base, api_key="any-key-an-app-has", max_retries=0,
                         timeout=60)


def grpc_chat(inference_server, messages, **sampling) -> pb.GenerateResponse:
    return inference_server.inference.Generate(pb.GenerateRequest(
        messages=[events_pb2.ChatMessage(role=m["role"], content=m["content"]) for m in messages],
        sampling=pb.SamplingParams(**sampling)), timeout=60)


def test_chat_completion_answers_like_grpc(client, inference_server) -> None:
    r = client.chat.completions.create(model=MODEL, messages=CHAT, max_tokens=10, temperature=0)
    want = grpc_chat(inference_server, CHAT, max_tokens=10, temperature=0.0)
    assert r.choices[0].message.content == want.text and r.choices[0].message.role == "assistant"
    assert r.choices[0].finish_reason == want.finish_reason and r.model == MODEL and r.object == "chat.completion"
    assert r.usage.completion_tokens == want.usage.completion_tokens
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens and r.id


def test_chat_stream_with_usage_equals_the_unary_answer(client) -> None:
    unary = client.chat.completions.create(model=MODEL, messages=CHAT, max_tokens=12, temperature=0,
                                           extra_body={"min_tokens": 12})
    chunks = list(client.chat.completions.create(model=MODEL, messages=CHAT, max_tokens=12, temperature=0,
                                                 stream=True, stream_options={"include_usage": True},
                                                 extra_body={"min_tokens": 12}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == unary.choices[0].message.content
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 12


def test_text_completion_unary_and_streamed(client, inference_server) -> None:
    want = inference_server.inference.Generate(pb.GenerateRequest(
        prompt="the tram passes", sampling=pb.SamplingParams(max_tokens=8, temperature=0.0)), timeout=60)
    r = client.completions.create(model=MODEL, prompt="the tram passes", max_tokens=8, temperature=0)
    assert r.choices[0].text == want.text and r.object == "text_completion"
    streamed = "".join(c.choices[0].text for c in client.completions.create(
        model=MODEL, prompt="the tram passes", max_tokens=8, temperature=0, stream=True) if c.choices)
    assert streamed == want.text


def test_logprobs_of_the_sampled_tokens_add_up_to_the_answer(client) -> None:
    """The engine's own per-token logprobs (vLLM, logprobs=0: no alternatives): one per completion
    token, their texts the answer, the same unary and streamed; the legacy API's lists too."""
    args = {"model": MODEL, "messages": CHAT, "max_tokens": 8, "temperature": 0, "extra_body": {"min_tokens": 8}}
    r = client.chat.completions.create(logprobs=True, **args)
    content = r.choices[0].logprobs.content
    assert len(content) == r.usage.completion_tokens == 8
    # (the test model's random tokens may be parts of a UTF-8 character: such a token's own text is
    # "\ufffd", as in vLLM's server, while the answer keeps only whole characters)
    def whole(text: str) -> str:
        return text.replace("\ufffd", "")
    assert whole("".join(t.token for t in content)) == whole(r.choices[0].message.content)
    assert all(t.logprob <= 0 and t.top_logprobs == [] and bytes(t.bytes).decode() == t.token for t in content)
    streamed = [t for c in client.chat.completions.create(logprobs=True, stream=True, **args)
                if c.choices and c.choices[0].logprobs for t in c.choices[0].logprobs.content]
    assert [(t.token, round(t.logprob, 4)) for t in streamed] == [(t.token, round(t.logprob, 4)) for t in content]
    legacy = client.completions.create(model=MODEL, prompt="the tram passes", max_tokens=6, temperature=0,
                                       logprobs=0, extra_body={"min_tokens": 6})
    lp = legacy.choices[0].logprobs
    assert whole("".join(lp.tokens)) == whole(legacy.choices[0].text) and len(lp.token_logprobs) == 6
    assert lp.text_offset[0] == 0 and all(x <= 0 for x in lp.token_logprobs)


def test_models_list_aliases_and_versions_and_route_by_them(client, inference_server) -> None:
    admin = inference_server.admin
    admin.LoadAdapter(pb.LoadAdapterRequest(adapter_alias="oai", version="v1", path="transit-qa/v1"),
                      metadata=ADMIN_MD, timeout=60)
    admin.SetRoute(pb.SetRouteRequest(adapter_alias="oai", stable_version="v1"), metadata=ADMIN_MD, timeout=10)
    ids = {m.id for m in client.models.list()}
    assert {MODEL, "oai", "oai@v1"} <= ids
    for model in ("oai", "oai@v1"):
        r = client.chat.completions.create(model=model, messages=CHAT, max_tokens=4, temperature=0)
        assert r.model == "oai@v1"


@pytest.mark.parametrize(("kwargs", "error", "says"), [
    ({"model": "no-such-alias"}, openai.NotFoundError, "no-such-alias"),
    ({"model": "oai@v999"}, openai.NotFoundError, ""),
    ({"messages": [{"role": "robot", "content": "hi"}]}, openai.BadRequestError, "role"),
    ({"messages": []}, openai.BadRequestError, "messages"),
    ({"n": 2}, openai.BadRequestError, "n must be 1"),
    ({"logprobs": True, "top_logprobs": 2}, openai.BadRequestError, "top_logprobs"),
    ({"max_tokens": 100_000}, openai.BadRequestError, "max_tokens"),
    ({"temperature": 9}, openai.BadRequestError, "temperature"),
    ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}]}, openai.BadRequestError,
     "tools"),
    ({"metadata": {"source": "evaluation"}}, openai.PermissionDeniedError, "reserved"),
])
def test_bad_requests_raise_the_sdks_own_errors(client, kwargs, error, says) -> None:
    args = {"model": MODEL, "messages": CHAT, "max_tokens": 4} | kwargs
    with pytest.raises(error) as info:
        client.chat.completions.create(**args)
    assert says in str(info.value) and len(info.value.message) < 400
    assert info.value.body["type"]  # OpenAI-shaped: {"error": {"message", "type", ...}}


def test_the_admin_token_opens_the_reserved_tags(inference_server) -> None:
    admin_client = openai.OpenAI(base_url=inference_server.http_base, api_key=ADMIN_TOKEN, max_retries=0)
    r = admin_client.chat.completions.create(model=MODEL, messages=CHAT, max_tokens=2,
                                             metadata={"source": "evaluation"})
    assert r.choices[0].message.content is not None


def test_events_feedback_and_metrics_of_an_http_request(client, inference_server, kafka_settings, unique) -> None:
    rid = unique("oai")
    r = client.chat.completions.create(model=MODEL, messages=CHAT, max_tokens=6, metadata={"client": "sdk"},
                                       extra_headers={"X-Request-Id": rid})
    assert r.id == rid
    # the README's way: the SDK's generic post, on driftloop's own endpoint
    fb = client.post("/feedback", body={"id": r.id, "rating": "negative", "correction": "every ten minutes"},
                     cast_to=object)
    assert fb["object"] == "feedback" and fb["id"]
    bad = httpx.post(f"{inference_server.http_base}/feedback", json={"id": "x", "rating": "meh"}, timeout=10)
    assert bad.status_code == 400 and bad.json()["error"]["type"] == "invalid_request_error"
    events = consume_until(
        kafka_settings, [PREDICTIONS, FEEDBACK],
        {PREDICTIONS.name: events_pb2.PredictionEvent, FEEDBACK.name: events_pb2.FeedbackEvent},
        done=lambda got: len(got) >= 2, keep=lambda e: e.request_id == rid)
    pred = next(e for e in events if isinstance(e, events_pb2.PredictionEvent))
    feedback = next(e for e in events if isinstance(e, events_pb2.FeedbackEvent))
    assert pred.transport == "http" and [m.content for m in pred.messages] == [m["content"] for m in CHAT]
    assert pred.completion == r.choices[0].message.content and pred.tags["client"] == "sdk"
    assert feedback.rating == events_pb2.RATING_NEGATIVE and feedback.correction == "every ten minutes"
    samples = scrape(inference_server.metrics_url)
    assert metric(samples, "driftloop_inference_requests_total", transport="http", code="OK") >= 1
    assert metric(samples, "driftloop_inference_requests_total", transport="http", code="NOT_FOUND") >= 1
