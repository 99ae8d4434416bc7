"""The engine interface the service talks to."""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class GenerationParams:
    max_tokens: int
    temperature: float
    top_p: float = 1.0
    seed: int | None = None
    stop: tuple[str, ...] = ()
    min_tokens: int = 0


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
    def count_tokens(self, prompt: str) -> int:
        """Prompt tokens as the engine will see them (special tokens included)."""

    @abc.abstractmethod
    def generate(
        self, request_id: str, prompt: str, params: GenerationParams, lora: LoraHandle | None
    ) -> AsyncIterator[Step]:
        """Stream steps; cancelling the iteration aborts the engine request."""

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
