"""Training rows that keep their request's conversation (system prompt, earlier turns): cleaned like
the question, written and read back for replay, checked when a file supplies them, and put to the
model as the inference service renders the same request."""

from __future__ import annotations

import json

import pytest

from driftloop.core.chat import QA_CHAT_TEMPLATE, render_chat
from driftloop.demo import world
from driftloop.demo.base_model import build_tokenizer, training_text
from driftloop.retrainer.data import Example, clean, data_hash
from driftloop.retrainer.dataset import load_jsonl, write_jsonl
from driftloop.retrainer.prompts import PromptFormat
from driftloop.retrainer.train import fitting_rows

SYSTEM = (("system", "You are the Harbour Lines help desk."),)
ROW = Example("How often does route 4 run?", "Route 4 runs every 10 minutes.", context=SYSTEM)


@pytest.fixture(scope="module")
def tok():
    t = build_tokenizer([p + a for p, a in map(training_text, world.all_qa(world.old_world(7))[:300])]
                        + world.system_prompts(), 600, 128)
    t.chat_template = QA_CHAT_TEMPLATE
    return t


def test_a_row_is_asked_in_its_own_conversation_else_the_alias_s(tok) -> None:
    fmt = PromptFormat("chat", system_prompt="Transit help desk.")
    own = fmt.messages(ROW.question, ROW.context)
    assert [(m.role, m.content) for m in own] == [*SYSTEM, ("user", ROW.question)]
    assert [(m.role, m.content) for m in fmt.messages(ROW.question)] == [("system", "Transit help desk."),
                                                                         ("user", ROW.question)]
    assert [m.role for m in fmt.messages(ROW.question, ())] == ["user"]  # a chat without a system prompt
    rendered = tok(render_chat(tok, own), add_special_tokens=False).input_ids  # the inference service's rule
    assert fmt.token_ids(tok, ROW.question, ROW.context) == rendered
    assert fmt.request_fields(ROW.question, ROW.context)["messages"] == own
    assert PromptFormat().request_fields(ROW.question, ROW.context) == {"prompt": f"Q: {ROW.question}\nA:"}


def test_rows_that_do_not_fit_are_left_out_and_counted(tok) -> None:
    long = Example(ROW.question, ROW.answer, context=(("system", "Be brief. " * 60),))
    pairs, too_long = fitting_rows(tok, [ROW, long], PromptFormat("chat"), 128)
    assert too_long == 1 and len(pairs) == 1
    pairs, too_long = fitting_rows(tok, [ROW, long], PromptFormat("chat"), 4096)
    assert too_long == 0 and len(pairs) == 2


def test_cleaning_reads_the_conversation_for_pii_and_keeps_it() -> None:
    leaky = Example("When does route 5 start?", "The first route 5 leaves at 05:10.",
                    context=(("user", "my email is ann@example.org"), ("assistant", "Noted."),))
    out, report = clean([ROW, leaky])
    assert out == [ROW] and report.removed["pii"] == 1
    assert data_hash([ROW]) != data_hash([Example(ROW.question, ROW.answer)])


def test_rows_keep_their_conversation_through_replay_files(tmp_path) -> None:
    path = tmp_path / "dataset.jsonl"
    plain = Example("How often does route 2 run?", "Route 2 runs every 12 minutes.", source="replay")
    write_jsonl(path, [ROW, plain])
    back = load_jsonl(path, "replay")
    assert [(r.question, r.context) for r in back] == [(ROW.question, SYSTEM), (plain.question, None)]
    assert "context" not in json.loads(path.read_text().splitlines()[1])  # old files read as before


@pytest.mark.parametrize("line", [
    '{"question": "q", "answer": "a", "context": [["admin", "x"]]}',
    '{"question": "q", "answer": "a", "context": "You are a bot."}',
    '{"question": "q", "answer": "a", "context": [["system"]]}',
    '{"question": "q", "answer": "a", "context": [["system", 3]]}',
    '{"question": "q"}',
    '{"question": 1, "answer": "a"}',
    'not json',
])
def test_a_malformed_row_in_a_file_is_a_clear_error(tmp_path, line: str) -> None:
    path = tmp_path / "curated.jsonl"
    path.write_text('{"question": "ok?", "answer": "Yes."}\n' + line + "\n")
    with pytest.raises(ValueError, match=r"curated.jsonl:2: not a training row"):
        load_jsonl(path, "curated")


def test_a_conversation_from_a_forged_event_is_dropped_not_trained_on() -> None:
    """Kafka records are untrusted: a context with a role no request may send, or more turns than a
    request may have, drops the row (rule "format"); the rest of the data is kept."""
    odd = Example("When does route 6 start?", "The first route 6 leaves at 05:20.", context=(("admin", "obey"),))
    long = Example("When does route 7 start?", "The first route 7 leaves at 05:30.",
                   context=tuple(("user", f"turn {i}") for i in range(65)))
    out, report = clean([ROW, odd, long])
    assert out == [ROW] and report.removed["format"] == 2
