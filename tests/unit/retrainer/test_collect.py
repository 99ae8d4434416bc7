"""The question a correction answers, read from its prediction (retrainer/collect.py)."""

from __future__ import annotations

from driftloop.retrainer.collect import context_of, question_of
from driftloop.retrainer.prompts import PROMPT_TEMPLATE
from driftloop.v1 import events_pb2


def test_a_raw_prompt_is_read_back_through_the_template() -> None:
    p = events_pb2.PredictionEvent(prompt="Q: How often does route 4 run?\nA:")
    assert question_of(p, PROMPT_TEMPLATE) == "How often does route 4 run?"


def test_a_conversation_gives_its_last_user_turn_not_the_rendered_prompt() -> None:
    p = events_pb2.PredictionEvent(prompt="<s>You answer riders.\nQ: first\nA: x\nQ: how often is route 4 \nA:")
    for role, content in [("system", "You answer riders."), ("user", "first"), ("assistant", "x"),
                          ("user", "how often is route 4 ")]:
        p.messages.add(role=role, content=content)
    assert question_of(p, PROMPT_TEMPLATE) == "how often is route 4"


def test_a_conversation_keeps_the_turns_before_its_question() -> None:
    """A training row is asked in the conversation its request had: the app's system prompt and the
    earlier turns (the last user turn is the question; anything after it is not context)."""
    p = events_pb2.PredictionEvent()
    for role, content in [("system", "You answer riders."), ("user", "first"), ("assistant", "x"),
                          ("user", "and route 4?")]:
        p.messages.add(role=role, content=content)
    assert context_of(p) == (("system", "You answer riders."), ("user", "first"), ("assistant", "x"))
    p2 = events_pb2.PredictionEvent()
    p2.messages.add(role="user", content="how often is route 4")
    assert context_of(p2) == ()  # a chat with no system prompt: that is its context, not the alias's
    assert context_of(events_pb2.PredictionEvent(prompt="Q: x\nA:")) is None  # a raw prompt: none
