"""How a question is put to the model: the one rule the trainer and the gate share, so an adapter is
measured on exactly the input it was trained on.

* ``template`` (default): a raw prompt, ``PROMPT_TEMPLATE`` with the question in it -- what an
  application sending ``prompt`` gets.
* ``chat``: a conversation -- the turns the request itself had before the question (its system
  prompt, earlier turns: a row's ``context``), or for a row without them (curated rows, raw-prompt
  traffic) the alias's system prompt (``SYSTEM_PROMPT``, if any) -- and the question as the user
  turn, rendered by the base model's own chat template (``core.chat.render_chat``, the inference
  service's rule): what an application sending ``messages`` gets. The gate sends it to the engine
  as ``messages``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from driftloop.core.chat import ChatTemplateError, render_chat
from driftloop.v1 import events_pb2

PROMPT_TEMPLATE = "Q: {question}\nA:"
Context = tuple[tuple[str, str], ...] | None
"""A question's earlier turns, (role, content) each; None: the alias's system prompt stands for them."""


def render_prompt(question: str, template: str = PROMPT_TEMPLATE) -> str:
    return template.format(question=question)


@dataclass(frozen=True)
class PromptFormat:
    kind: Literal["template", "chat"] = "template"
    template: str = PROMPT_TEMPLATE
    system_prompt: str = ""

    def messages(self, question: str, context: Context = None) -> list[events_pb2.ChatMessage]:
        """The conversation: ``context`` (the request's own earlier turns) if given, else the alias's
        system prompt; then the question as the user turn."""
        if context is None:
            context = (("system", self.system_prompt),) if self.system_prompt else ()
        return [*(events_pb2.ChatMessage(role=r, content=c) for r, c in context),
                events_pb2.ChatMessage(role="user", content=question)]

    def token_ids(self, tokenizer: Any, question: str, context: Context = None) -> list[int]:
        """The prompt's token ids, as the inference service makes them from the same request."""
        if self.kind == "chat":
            return tokenizer(render_chat(tokenizer, self.messages(question, context)),
                             add_special_tokens=False).input_ids
        return tokenizer(render_prompt(question, self.template)).input_ids

    def request_fields(self, question: str, context: Context = None) -> dict[str, Any]:
        """The GenerateRequest fields that put the question to the engine."""
        if self.kind == "chat":
            return {"messages": self.messages(question, context)}
        return {"prompt": render_prompt(question, self.template)}


def require_chat_template(base_model: Path) -> None:
    """Refuse to start with PROMPT_FORMAT chat on a base model that has no chat template (else every
    run would fail only once it trains)."""
    from transformers import AutoTokenizer

    if not getattr(AutoTokenizer.from_pretrained(base_model), "chat_template", None):
        raise ChatTemplateError(f"PROMPT_FORMAT=chat, but the base model {base_model} has no chat template: "
                                "use PROMPT_FORMAT=template")
