"""The retrainer's prompt formats: what training rows are made of and what the gate sends are the
same input, and a chat row is exactly what the inference service makes of the same messages."""

from __future__ import annotations

import pytest

from driftloop.core.chat import QA_CHAT_TEMPLATE, ChatTemplateError, render_chat
from driftloop.demo import world
from driftloop.demo.base_model import build_tokenizer, training_text
from driftloop.retrainer.prompts import PromptFormat, render_prompt
from driftloop.retrainer.train import encode_pairs

QUESTION = "when does route 4 start"


@pytest.fixture(scope="module")
def tok():
    qas = world.all_qa(world.old_world(7))[:300]
    t = build_tokenizer([p + a for p, a in map(training_text, qas)] + ["Transit help desk."], 600, 128)
    t.chat_template = QA_CHAT_TEMPLATE
    return t


def test_template_rows_are_the_raw_prompt(tok) -> None:
    fmt = PromptFormat()
    assert fmt.token_ids(tok, QUESTION) == tok(render_prompt(QUESTION)).input_ids
    assert fmt.request_fields(QUESTION) == {"prompt": f"Q: {QUESTION}\nA:"}


def test_chat_rows_are_what_the_service_renders_from_the_same_messages(tok) -> None:
    fmt = PromptFormat("chat", system_prompt="Transit help desk.")
    sent = fmt.request_fields(QUESTION)["messages"]
    assert [(m.role, m.content) for m in sent] == [("system", "Transit help desk."), ("user", QUESTION)]
    rendered = render_chat(tok, sent)  # the inference service's rule
    assert rendered == f"<s>Transit help desk.\nQ: {QUESTION}\nA:"
    assert fmt.token_ids(tok, QUESTION) == tok(rendered, add_special_tokens=False).input_ids
    assert tok.convert_ids_to_tokens(fmt.token_ids(tok, QUESTION)).count("<s>") == 1  # no second BOS


def test_chat_without_a_system_prompt_is_the_raw_prompt_for_these_models(tok) -> None:
    assert PromptFormat("chat").token_ids(tok, QUESTION) == PromptFormat().token_ids(tok, QUESTION)


def test_chat_on_a_model_without_a_template_is_a_clear_error(tok) -> None:
    bare = build_tokenizer(["Q: a\nA: b"], 300, 32)
    with pytest.raises(ChatTemplateError, match="no chat template"):
        PromptFormat("chat").token_ids(bare, QUESTION)


def test_the_retrainer_refuses_chat_for_a_base_model_without_a_template(tok, tmp_path) -> None:
    from driftloop.retrainer.prompts import require_chat_template

    build_tokenizer(["Q: a\nA: b"], 300, 32).save_pretrained(tmp_path / "bare")
    tok.save_pretrained(tmp_path / "chat")
    with pytest.raises(ChatTemplateError, match="PROMPT_FORMAT=chat"):
        require_chat_template(tmp_path / "bare")
    require_chat_template(tmp_path / "chat")


def test_training_rows_take_token_ids_and_learn_only_the_answer(tok) -> None:
    ids = PromptFormat("chat", system_prompt="Transit help desk.").token_ids(tok, QUESTION)
    [(x, labels)] = encode_pairs(tok, [(ids, " 05:10")], 128)
    assert x[: len(ids)] == ids and labels[: len(ids)] == [-100] * len(ids)
    assert labels[len(ids):] == x[len(ids):] and x[-1] == tok.eos_token_id


def test_a_riders_question_is_data_to_the_template_never_code(tok) -> None:
    """Questions come from untrusted requests: Jinja in one is rendered as text, not run."""
    question = "{{ 7 * 7 }} {% for x in range(3) %}x{% endfor %} {{ self.__init__.__globals__ }}"
    rendered = render_chat(tok, PromptFormat("chat").messages(question))
    assert rendered == f"<s>Q: {question}\nA:"
