"""How an event becomes what the monitor analyses (monitor/features.py)."""

from __future__ import annotations

from driftloop.monitor.features import Sample, embedded_text
from driftloop.v1 import events_pb2


def chat(*turns: tuple[str, str], prompt: str = "rendered") -> events_pb2.PredictionEvent:
    ev = events_pb2.PredictionEvent(prompt=prompt, prompt_tokens=12)
    for role, content in turns:
        ev.messages.add(role=role, content=content)
    return ev


def test_a_conversation_is_embedded_by_its_last_user_turn() -> None:
    ev = chat(("system", "you are the transit assistant"), ("user", "first question"), ("assistant", "answer"),
              ("user", "how often is route 4"))
    assert embedded_text(ev) == "how often is route 4"
    assert Sample.from_event(ev).prompt == "how often is route 4"


def test_a_raw_prompt_or_a_conversation_without_user_turns_is_embedded_as_the_prompt() -> None:
    assert embedded_text(events_pb2.PredictionEvent(prompt="Q: how often\nA:")) == "Q: how often\nA:"
    assert embedded_text(chat(("system", "only a system turn"), prompt="<s>only a system turn\nA:")) == \
        "<s>only a system turn\nA:"


def test_prompt_length_is_the_rendered_prompts_tokens() -> None:
    assert Sample.from_event(chat(("user", "hi"))).features.prompt_length == 12.0
