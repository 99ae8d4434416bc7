"""The engine interface the service talks to."""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from driftloop.core import chat
from driftloop.core.chat import Turn
from driftloop.inference.errors import InvalidRequest


@dataclass(frozen=True)
class GenerationParams:
    max_tokens: int
    temperature: float
    top_p: float = 1.0
    seed: int | None = None
    stop: tuple[str, ...] = ()
    min_tokens: int = 0
    # True: the caller streams, so steps come as the engine makes them; False: the caller only
    # wants the end (an engine may then yield one final Step and save the per-token work).
    incremental: bool = True
    # True: each Step carries its tokens' ids and log-probabilities (``token_logprobs``).
    logprobs: bool = False


@dataclass(frozen=True)
class LoraHandle:
    """One adapter version as the engine knows it: a unique name, a never-reused int id, a path."""

    name: str
    int_id: int
    path: Path


@dataclass
class Step:
    """What one engine step produced for a request (deltas, plus running totals)."""

    text_delta: str
    prompt_tokens: int
    completion_tokens: int
    logprob_sum: float | None
    finish_reason: str | None = None
    token_logprobs: tuple[tuple[int, float], ...] = ()  # (token id, logprob) of this step's tokens, if asked


class Engine(abc.ABC):
    """Generation with optional LoRA, adapter add/remove, and a few facts about the base model."""

    model_name: str
    max_model_len: int
    max_lora_rank: int
    kind: str

    @abc.abstractmethod
    async def start(self) -> None: ...

    @abc.abstractmethod
    async def shutdown(self) -> None: ...

    @abc.abstractmethod
    def tokenize(self, prompt: str, add_special_tokens: bool = True) -> list[int]:
        """The prompt's token ids as the engine will see them (with the tokenizer's special tokens,
        e.g. BOS, unless ``add_special_tokens`` is False: a rendered chat template has its own)."""

    def token_texts(self, token_ids: Sequence[int], before: Sequence[int] = ()) -> list[str]:
        """The text each token adds to the completion after the tokens ``before`` it (OpenAI's
        ``logprobs`` name tokens by their text); special tokens add none."""
        raise NotImplementedError

    @abc.abstractmethod
    def render_chat(self, messages: Sequence[Turn]) -> str:
        """A conversation as the base model's chat template renders it, generation prompt added;
        :class:`InvalidRequest` when the model has no template or the template refuses it."""

    @abc.abstractmethod
    def generate(
        self, request_id: str, prompt_token_ids: list[int], params: GenerationParams, lora: LoraHandle | None
    ) -> AsyncIterator[Step]:
        """Stream steps for an already tokenized prompt (tokenized once, by :meth:`tokenize`);
        cancelling the iteration aborts the engine request."""

    @abc.abstractmethod
    async def add_lora(self, lora: LoraHandle) -> None: ...

    @abc.abstractmethod
    async def remove_lora(self, lora: LoraHandle) -> None: ...

    @abc.abstractmethod
    def lora_target_modules(self) -> frozenset[str]:
        """Names of the base model's modules an adapter may target (e.g. q_proj)."""

    async def check_health(self) -> bool:
        return True


def linear_module_names(model_path: Path) -> frozenset[str]:
    """Leaf names of the base model's Linear layers, found on the meta device (no weights read)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(model_path)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    names = {name.rsplit(".", 1)[-1] for name, mod in model.named_modules() if isinstance(mod, torch.nn.Linear)}
    # vLLM serves LoRA on the decoder's projections, not on the output head.
    names.discard("lm_head")
    return frozenset(names)


DETOKENIZE_CONTEXT = 4
"""Tokens before a token that :meth:`Engine.token_texts` decodes it with (enough for a piece's space)."""


class TokenizerMixin:
    """:meth:`Engine.tokenize` and :meth:`Engine.render_chat` with the base model's Hugging Face
    tokenizer (``_tokenizer``, set when the engine starts), for engines that hold one."""

    _tokenizer: Any = None

    def tokenize(self, prompt: str, add_special_tokens: bool = True) -> list[int]:
        return self._tokenizer.encode(prompt, add_special_tokens=add_special_tokens)

    def token_texts(self, token_ids: Sequence[int], before: Sequence[int] = ()) -> list[str]:
        # Decoded with a few tokens of context, as an incremental detokenizer does: a token alone loses
        # the leading space a SentencePiece piece carries.
        decode = self._tokenizer.decode
        out, context = [], list(before)[-DETOKENIZE_CONTEXT:]
        for t in token_ids:
            prev, now = decode(context, skip_special_tokens=True), decode([*context, t], skip_special_tokens=True)
            out.append(now[len(prev):] if now.startswith(prev) else decode([t], skip_special_tokens=True))
            context = [*context, t][-DETOKENIZE_CONTEXT:]
        return out

    def render_chat(self, messages: Sequence[Turn]) -> str:
        """``core.chat.render_chat``, its refusals as :class:`InvalidRequest` (the client's mistake)."""
        try:
            return chat.render_chat(self._tokenizer, messages)
        except chat.ChatTemplateError as exc:
            raise InvalidRequest(str(exc)) from None
