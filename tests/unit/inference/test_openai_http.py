"""The OpenAI-compatible routes over the real data plane with the fake engine (no model, no Kafka),
through Starlette's test client: shapes, streaming, errors and the body limit. The same paths with
the real ``openai`` client on the real engine: tests/integration/inference/test_openai.py."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from driftloop.inference.auth import AdminAuth
from driftloop.inference.openai.routes import build_app
from driftloop.inference.openai.server import MAX_BODY_BYTES, BodyLimit
from tests.unit.inference.fakes import PlaneHarness

CHAT = {"model": "fake", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
def h(tmp_path) -> PlaneHarness:
    return PlaneHarness(tmp_path)


@pytest.fixture
def client(h: PlaneHarness) -> TestClient:
    return TestClient(BodyLimit(build_app(h.plane, h.registry, AdminAuth("t"), h.metrics)), base_url="http://t/v1")


def test_chat_completion_shape_usage_and_one_http_event(client, h) -> None:
    r = client.post("/chat/completions", json=CHAT, headers={"x-request-id": "r-1"})
    body = r.json()
    assert r.status_code == 200 and body["id"] == "r-1" and body["object"] == "chat.completion"
    assert body["choices"][0]["message"] == {"role": "assistant", "content": "a b c"}
    assert body["choices"][0]["finish_reason"] == "stop" and body["model"] == "fake"
    assert body["usage"] == {"prompt_tokens": 3, "completion_tokens": 3, "total_tokens": 6}  # "user: hi\nassistant:"
    [ev] = h.events()
    assert ev.transport == "http" and ev.messages[0].content == "hi" and not ev.stream
    assert h.value("driftloop_inference_requests_total", method="Generate", model="fake", adapter_alias="",
                   adapter_version="", code="OK", transport="http") == 1


def test_chat_stream_is_server_sent_events_ending_in_done(client, h) -> None:
    r = client.post("/chat/completions", json=CHAT | {"stream": True, "stream_options": {"include_usage": True}})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    data = [line.removeprefix("data: ") for line in r.text.splitlines() if line.startswith("data: ")]
    assert data[-1] == "[DONE]"
    chunks = [json.loads(d) for d in data[:-1]]
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert "".join(c["choices"][0]["delta"]["content"] for c in chunks if c["choices"]) == "a b c"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 3
    assert h.events()[0].stream


def test_text_completion_and_models(client) -> None:
    r = client.post("/completions", json={"model": "fake", "prompt": "Q: x\nA:", "max_tokens": 3})
    assert r.json()["choices"][0]["text"] == "a b c" and r.json()["object"] == "text_completion"
    assert [m["id"] for m in client.get("/models").json()["data"]] == ["fake"]


@pytest.mark.parametrize(("body", "status", "type_"), [
    (CHAT | {"model": "nope"}, 404, "not_found_error"),
    (CHAT | {"n": 2}, 400, "invalid_request_error"),
    (CHAT | {"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "refuse"}]}, 400,
     "invalid_request_error"),
    (CHAT | {"metadata": {"source": "evaluation"}}, 403, "permission_error"),
    (CHAT | {"max_tokens": "many"}, 400, "invalid_request_error"),
    ({"messages": "x"}, 400, "invalid_request_error"),
])
def test_errors_are_openai_shaped_and_never_an_event(client, h, body, status, type_) -> None:
    r = client.post("/chat/completions", json=body)
    assert r.status_code == status and r.json()["error"]["type"] == type_, r.text
    assert h.events() == []


def test_an_error_before_the_first_chunk_keeps_its_status_on_a_stream(client) -> None:
    r = client.post("/chat/completions", json=CHAT | {"model": "nope", "stream": True})
    assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found"


def test_an_engine_failure_mid_stream_is_an_error_event(client, h) -> None:
    h.engine.fail = RuntimeError("secret")
    r = client.post("/chat/completions", json=CHAT | {"stream": True})
    data = [line.removeprefix("data: ") for line in r.text.splitlines() if line.startswith("data: ")]
    assert json.loads(data[-2])["error"]["type"] == "internal_error" and "secret" not in r.text
    assert data[-1] == "[DONE]" and h.events()[0].error_code == "INTERNAL"


def test_the_admin_token_opens_reserved_tags(client, h) -> None:
    r = client.post("/chat/completions", json=CHAT | {"metadata": {"source": "evaluation"}},
                    headers={"authorization": "Bearer t"})
    assert r.status_code == 200 and h.events()[0].tags["source"] == "evaluation"


def test_feedback_by_response_id(client, h) -> None:
    r = client.post("/feedback", json={"id": "r-1", "rating": "negative", "correction": "x"})
    assert r.status_code == 200 and r.json()["object"] == "feedback"
    assert client.post("/feedback", json={"id": "r-1"}).status_code == 400  # neither rating nor correction


def test_a_body_over_the_limit_is_413_before_it_is_parsed(client) -> None:
    r = client.post("/chat/completions", content=b"x" * (MAX_BODY_BYTES + 1),
                    headers={"content-type": "application/json"})
    assert r.status_code == 413 and r.json()["error"]["code"] == "request_too_large"
    assert client.get("/nowhere").status_code == 404 and client.get("/nowhere").json()["error"]


def test_logprobs_of_the_sampled_tokens_when_asked(client) -> None:
    """Chat: ``logprobs: true`` → ``content`` per token; completions: ``logprobs: 0`` → the legacy
    lists; streamed, each chunk carries its own tokens; alternatives (top_logprobs) are refused."""
    body = client.post("/chat/completions", json=CHAT | {"logprobs": True}).json()
    content = body["choices"][0]["logprobs"]["content"]
    assert [(t["token"], t["logprob"], t["bytes"], t["top_logprobs"]) for t in content] == [
        ("a", -0.5, [97], []), (" b", -0.5, [32, 98], []), (" c", -0.5, [32, 99], [])]
    assert client.post("/chat/completions", json=CHAT).json()["choices"][0]["logprobs"] is None
    r = client.post("/chat/completions", json=CHAT | {"logprobs": True, "stream": True})
    chunks = [json.loads(line.removeprefix("data: ")) for line in r.text.splitlines()
              if line.startswith("data: {")]
    assert [[t["token"] for t in c["choices"][0]["logprobs"]["content"]] for c in chunks] == [["a"], [" b"], [" c"]]
    legacy = client.post("/completions", json={"model": "fake", "prompt": "x", "logprobs": 0}).json()
    assert legacy["choices"][0]["logprobs"] == {"tokens": ["a", " b", " c"], "token_logprobs": [-0.5] * 3,
                                                "top_logprobs": None, "text_offset": [0, 1, 3]}
    for path, extra in (("/chat/completions", CHAT | {"logprobs": True, "top_logprobs": 2}),
                        ("/completions", {"model": "fake", "prompt": "x", "logprobs": 3})):
        r = client.post(path, json=extra)
        assert r.status_code == 400 and "top_logprobs" in r.json()["error"]["message"]
