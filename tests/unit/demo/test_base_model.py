"""The demo's base model is trained the way applications talk to it: raw prompts, and chats with an
app's system prompt -- never the demo app's own, so the demo measures a system prompt it never saw."""

from __future__ import annotations

import random

from driftloop.core.chat import QA_CHAT_TEMPLATE, render_chat
from driftloop.demo import world
from driftloop.demo.base_model import build_tokenizer, training_pairs, training_text
from driftloop.retrainer.prompts import PromptFormat


def test_the_demo_app_s_system_prompt_is_never_trained_on() -> None:
    trained = world.system_prompts()
    assert len(trained) == len(set(trained)) >= 100
    assert world.APP_SYSTEM_PROMPT not in trained and world.APP_SYSTEM_PROMPT in world.system_prompts(held_out=True)
    assert not any(a in p for a in world.HELD_OUT_AGENCIES for p in trained)


def test_training_pairs_are_every_question_raw_and_a_share_behind_a_system_prompt() -> None:
    train = [q for q in world.all_qa(world.old_world(7)) if not q.held_out]
    pairs = training_pairs(train, 0.5, random.Random(0))
    raw, behind = pairs[: len(train)], pairs[len(train):]
    assert raw == [training_text(q) for q in train]
    assert 0.45 * len(train) < len(behind) < 0.55 * len(train)
    systems = set(world.system_prompts())
    for prompt, answer in behind:
        system, question = prompt.split("\n", 1)
        assert system in systems and question.startswith("Q: ") and question.endswith("\nA:")
        assert answer.startswith(" ")
    assert training_pairs(train, 0.0, random.Random(0)) == raw


def test_a_system_row_is_what_the_service_renders_from_the_same_chat() -> None:
    qa = world.all_qa(world.old_world(7))[0]
    tok = build_tokenizer([p + a for p, a in map(training_text, world.all_qa(world.old_world(7))[:200])]
                          + world.system_prompts(), 600, 128)
    tok.chat_template = QA_CHAT_TEMPLATE
    system = world.system_prompts()[3]
    prompt, _ = training_text(qa, system)
    fmt = PromptFormat("chat", system_prompt=system)
    assert render_chat(tok, fmt.messages(qa.question)) == "<s>" + prompt
    assert fmt.token_ids(tok, qa.question) == tok(prompt).input_ids  # the BOS the tokenizer adds, once
