"""Hostile requests at the OpenAI-compatible HTTP boundary (raw httpx, so malformed bodies reach the
server as sent): each gets a 4xx with an OpenAI-shaped body whose message is short and never echoes
the input, nothing counts as a server bug, and the server keeps serving both listeners. The loop
afterwards is checked by test_3_loop_afterwards, as for gRPC."""

from __future__ import annotations

import json

import httpx
import pytest

from driftloop.v1 import inference_pb2 as pb
from tests.integration.helpers import metric, scrape
from tests.integration.hostile.test_1_grpc import assert_healthy

pytestmark = pytest.mark.integration
HUGE = "a" * (1 << 20)
CHAT = "/chat/completions"


def chat(**extra) -> dict:
    return {"model": "tiny-llama", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2} | extra


# (case, path, body as bytes or JSON-able, headers, status)
HOSTILE = [
    ("not JSON", CHAT, b"{not json", {}, 400),
    ("JSON but not an object", CHAT, b"[1, 2, 3]", {}, 400),
    ("invalid UTF-8", CHAT, b'{"model": "\xff\xfe", "messages": []}', {}, 400),
    ("10,000-deep nesting", CHAT, b"[" * 10_000 + b"]" * 10_000, {}, 400),
    ("a 5 MiB body", CHAT, json.dumps(chat(user="u" * (5 << 20))).encode(), {}, 413),
    ("a 5 MiB body sent chunked (no Content-Length)", CHAT, iter([b" " * (1 << 20)] * 5), {}, 413),
    ("1 MiB model name", CHAT, chat(model=HUGE), {}, 400),
    ("model with a path", CHAT, chat(model="../../etc/passwd"), {}, 400),
    ("model alias@version@more", CHAT, chat(model="transit-qa@v1@x"), {}, 400),
    ("messages not a list", CHAT, chat(messages="hello"), {}, 400),
    ("10,000 messages", CHAT, chat(messages=[{"role": "user", "content": "x"}] * 10_000), {}, 400),
    ("role 'tool'", CHAT, chat(messages=[{"role": "tool", "content": "x"}]), {}, 400),
    ("1 MiB role", CHAT, chat(messages=[{"role": HUGE, "content": "x"}]), {}, 400),
    ("1 MiB message", CHAT, chat(messages=[{"role": "user", "content": HUGE}]), {}, 400),
    ("image content part", CHAT, chat(messages=[{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "file:///etc/passwd"}}]}]), {}, 400),
    ("max_tokens -1", CHAT, chat(max_tokens=-1), {}, 400),
    ("max_tokens 2^70", CHAT, chat(max_tokens=2**70), {}, 400),
    ("temperature NaN", CHAT, b'{"model": "tiny-llama", "messages": [{"role": "user", "content": "x"}], '
                              b'"temperature": NaN}', {}, 400),
    ("seed -1", CHAT, chat(seed=-1), {}, 400),
    ("stop: 1000 strings", CHAT, chat(stop=["x"] * 1000), {}, 400),
    ("n = 1000", CHAT, chat(n=1000), {}, 400),
    ("metadata with 1000 tags", CHAT, chat(metadata={f"k{i}": "v" for i in range(1000)}), {}, 400),
    ("metadata source=retrainer-gate", CHAT, chat(metadata={"source": "retrainer-gate"}), {}, 403),
    ("X-Request-Id with a newline-like path", CHAT, chat(), {"x-request-id": "../../x"}, 400),
    ("unknown model", CHAT, chat(model="invented-alias"), {}, 404),
    ("completions: a list of 1000 prompts", "/completions", {"model": "tiny-llama", "prompt": ["x"] * 1000}, {}, 400),
    ("completions: 1 MiB prompt", "/completions", {"model": "tiny-llama", "prompt": HUGE}, {}, 400),
    ("feedback: no id", "/feedback", {"rating": "negative"}, {}, 400),
    ("feedback: id with a path", "/feedback", {"id": "../../x", "rating": "negative"}, {}, 400),
    ("feedback: 2 MB correction", "/feedback", {"id": "r1", "correction": "c" * 2_000_000}, {}, 400),
    ("feedback: rating 'meh'", "/feedback", {"id": "r1", "rating": "meh"}, {}, 400),
]


@pytest.mark.parametrize(("case", "path", "body", "headers", "status"), HOSTILE, ids=[c[0] for c in HOSTILE])
def test_hostile_http(loop, inference_server, case, path, body, headers, status) -> None:
    loop.case(f"HTTP: {case}")
    content = body if isinstance(body, bytes) or hasattr(body, "__next__") else json.dumps(body).encode()
    before = metric(scrape(inference_server.metrics_url), "driftloop_inference_unexpected_errors_total")
    with httpx.Client(base_url=inference_server.http_base, timeout=60) as client:
        r = client.post(path, content=content, headers={"content-type": "application/json", **headers})
    assert r.status_code == status, (case, r.status_code, r.text[:300])
    error = r.json()["error"]
    assert error["type"] and error["message"] and len(r.text) < 600, (case, r.text[:300])
    assert "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" not in r.text  # never the input echoed back
    assert metric(scrape(inference_server.metrics_url), "driftloop_inference_unexpected_errors_total") == before
    assert_healthy(inference_server)


def test_a_stream_the_client_drops_is_cancelled_and_the_server_goes_on(loop, inference_server) -> None:
    loop.case("HTTP: stream dropped by the client after the first event")
    with httpx.Client(base_url=inference_server.http_base, timeout=60) as client, \
            client.stream("POST", CHAT, json=chat(max_tokens=64, min_tokens=64, stream=True)) as r:
        assert r.status_code == 200
        next(r.iter_lines())
    assert_healthy(inference_server)
    r = httpx.post(f"{inference_server.http_base}{CHAT}", json=chat(), timeout=60)
    assert r.status_code == 200 and r.json()["choices"][0]["message"]["role"] == "assistant"
    inference_server.inference.Generate(pb.GenerateRequest(prompt="still there"), timeout=60)
