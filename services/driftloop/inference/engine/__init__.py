"""Engines behind one interface: vLLM AsyncLLM (default) and transformers + PEFT (fallback)."""

from __future__ import annotations

from driftloop.inference.engine.base import Engine, GenerationParams, LoraHandle, Step
from driftloop.inference.settings import InferenceSettings

__all__ = ["Engine", "GenerationParams", "LoraHandle", "Step", "create_engine"]


def create_engine(settings: InferenceSettings) -> Engine:
    if settings.engine == "vllm":
        from driftloop.inference.engine.vllm_engine import VllmEngine

        return VllmEngine(settings)
    from driftloop.inference.engine.hf_engine import HfEngine

    return HfEngine(settings)
