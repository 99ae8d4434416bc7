"""Chat messages through gRPC on the real engine: rendered with the model's own chat template (the
tiny model's is core/chat.QA_CHAT_TEMPLATE), streamed the same way, and carried in the event."""

from __future__ import annotations

import grpc
import pytest

from driftloop.core.topics import PREDICTIONS
from driftloop.v1 import events_pb2
from driftloop.v1 import inference_pb2 as pb
from tests.integration.helpers import consume_until

pytestmark = pytest.mark.integration
GREEDY = pb.SamplingParams(max_tokens=12, min_tokens=12, temperature=0.0)


def turns(*pairs: tuple[str, str]) -> list[events_pb2.ChatMessage]:
    return [events_pb2.ChatMessage(role=r, content=c) for r, c in pairs]


def test_a_user_turn_is_the_prompt_the_model_was_trained_on(inference_server) -> None:
    """One user turn renders as "Q: {q}\\nA:" (with BOS): the same tokens, so the same greedy answer."""
    inf = inference_server.inference
    chat = inf.Generate(pb.GenerateRequest(messages=turns(("user", "when does route 4 leave")), sampling=GREEDY),
                        timeout=60)
    raw = inf.Generate(pb.GenerateRequest(prompt="Q: when does route 4 leave\nA:", sampling=GREEDY), timeout=60)
    assert chat.text == raw.text and chat.usage.prompt_tokens == raw.usage.prompt_tokens


def test_chat_streams_and_reaches_kafka_with_its_messages(inference_server, kafka_settings, unique) -> None:
    inf = inference_server.inference
    rid = unique("chat")
    msgs = turns(("system", "answer briefly"), ("user", "is the tram late"), ("assistant", "no"),
                 ("user", "and the bus"))
    chunks = list(inf.GenerateStream(pb.GenerateRequest(request_id=rid, messages=msgs, sampling=GREEDY), timeout=60))
    unary = inf.Generate(pb.GenerateRequest(messages=msgs, sampling=GREEDY), timeout=60)
    assert "".join(c.text_delta for c in chunks) == unary.text and chunks[-1].usage.completion_tokens == 12
    [ev] = consume_until(kafka_settings, [PREDICTIONS], {PREDICTIONS.name: events_pb2.PredictionEvent},
                         done=lambda got: len(got) >= 1, keep=lambda e: e.request_id == rid)
    assert [(m.role, m.content) for m in ev.messages] == [(m.role, m.content) for m in msgs]
    assert ev.prompt == "<s>answer briefly\nQ: is the tram late\nA: no\nQ: and the bus\nA:"
    assert ev.stream and ev.completion == unary.text


@pytest.mark.parametrize("req,why", [
    (pb.GenerateRequest(messages=turns(("robot", "hi"))), "role"),
    (pb.GenerateRequest(messages=[]), "prompt is empty"),
    (pb.GenerateRequest(prompt="hi", messages=turns(("user", "hi"))), "not both"),
])
def test_bad_conversations_are_refused(inference_server, req, why: str) -> None:
    with pytest.raises(grpc.RpcError) as err:
        inference_server.inference.Generate(req, timeout=30)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and why in err.value.details()
