"""Conversations, shared by the services: how one becomes text (:func:`render_chat`, at inference and
in training), what the user asked in one (:func:`asked`), and the chat template of the models the
project builds itself (:data:`QA_CHAT_TEMPLATE`).

That template (Hugging Face's Jinja format, stored with the tokenizer files of the tests' tiny model
and the demo's base model) renders a conversation of one user turn exactly as the
"Q: {question}\\nA:" prompt those models are trained on (with the BOS token the tokenizer adds to a
raw prompt); a system turn is a line of its own before it; assistant turns are earlier answers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from driftloop.v1 import events_pb2

CHAT_ROLES = frozenset({"system", "user", "assistant"})
MAX_MESSAGES = 64  # turns in one conversation


class Turn(Protocol):
    role: str
    content: str


class ChatTemplateError(ValueError):
    """The model has no chat template, or its template refused the conversation."""


QA_CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for m in messages %}"
    "{% if m['role'] == 'system' %}{{ m['content'] }}\n"
    "{% elif m['role'] == 'user' %}Q: {{ m['content'] }}\n"
    "{% else %}A: {{ m['content'] }}\n"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}A:{% endif %}"
)


def asked(event: events_pb2.PredictionEvent) -> str | None:
    """What the user asked in a prediction that came as a conversation: its last user turn (the
    system prompt and the history are the application's); None for a raw prompt. The monitor embeds
    it, the retrainer takes it as the question a correction answers."""
    for m in reversed(event.messages):
        if m.role == "user":
            return m.content
    return None


def render_chat(tokenizer: Any, messages: Sequence[Turn]) -> str:
    """The one way a conversation becomes text, at inference and in training: the tokenizer's own
    chat template (from the model's tokenizer files; transformers renders it in a sandboxed Jinja
    environment), generation prompt added. Tokenize the result without extra special tokens."""
    if not getattr(tokenizer, "chat_template", None):
        raise ChatTemplateError("this base model has no chat template: send a prompt instead of messages")
    from jinja2 import TemplateError

    try:
        return tokenizer.apply_chat_template([{"role": m.role, "content": m.content} for m in messages],
                                             tokenize=False, add_generation_prompt=True)
    except TemplateError as exc:  # the template's own refusal, e.g. raise_exception("roles must alternate")
        raise ChatTemplateError(f"the chat template refused the conversation: {str(exc)[:200]}") from None
