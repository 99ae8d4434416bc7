"""transformers + PEFT engine: for places without vLLM (a laptop, a CPU-only CI). One request at a
time, greedy or sampled decoding with a KV cache, LoRA adapters through PEFT's multi-adapter API."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Callable

from driftloop.inference.engine.base import (
    Engine,
    GenerationParams,
    LoraHandle,
    Step,
    TokenizerMixin,
    linear_module_names,
)
from driftloop.inference.errors import EngineUnavailable
from driftloop.inference.settings import InferenceSettings

_DTYPES = {"float32": "float32", "bfloat16": "bfloat16", "float16": "float16", "auto": "float32"}


class HfEngine(TokenizerMixin, Engine):
    kind = "hf"

    def __init__(self, settings: InferenceSettings) -> None:
        self.s = settings
        self.model_name = settings.model_name
        self.max_model_len = settings.max_model_len
        self.max_lora_rank = settings.max_lora_rank
        self._model = None
        self._tokenizer = None
        self._adapters: set[str] = set()
        self._lock = asyncio.Lock()  # PEFT's active adapter is global: one generation at a time
        self._modules: frozenset[str] = frozenset()

    async def start(self) -> None:
        await asyncio.to_thread(self._load)

    def _load(self) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self._torch = torch
        self._tokenizer = AutoTokenizer.from_pretrained(self.s.model_path)
        dtype = getattr(torch, _DTYPES[self.s.dtype])
        self._model = AutoModelForCausalLM.from_pretrained(self.s.model_path, dtype=dtype).eval()
        self._device = "cuda" if torch.cuda.is_available() else "cpu"
        self._model.to(self._device)
        limit = getattr(self._model.config, "max_position_embeddings", self.max_model_len)
        self.max_model_len = min(self.max_model_len, limit)
        self._modules = linear_module_names(self.s.model_path)

    async def shutdown(self) -> None:
        self._model = None

    def lora_target_modules(self) -> frozenset[str]:
        return self._modules

    async def add_lora(self, lora: LoraHandle) -> None:
        async with self._lock:
            await asyncio.to_thread(self._add, lora)

    def _add(self, lora: LoraHandle) -> None:
        from peft import PeftModel

        if isinstance(self._model, PeftModel):
            self._model.load_adapter(str(lora.path), adapter_name=lora.name)
        else:
            self._model = PeftModel.from_pretrained(self._model, str(lora.path), adapter_name=lora.name).eval()
        self._adapters.add(lora.name)

    async def remove_lora(self, lora: LoraHandle) -> None:
        async with self._lock:
            if lora.name in self._adapters:
                self._model.delete_adapter(lora.name)
                self._adapters.discard(lora.name)

    async def generate(
        self, request_id: str, prompt_token_ids: list[int], params: GenerationParams, lora: LoraHandle | None
    ) -> AsyncIterator[Step]:
        if self._model is None:
            raise EngineUnavailable("engine is not running")
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Step | BaseException] = asyncio.Queue()
        cancelled = threading.Event()

        def emit(item: Step | BaseException) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, item)

        async with self._lock:
            worker = asyncio.ensure_future(
                asyncio.to_thread(self._decode, prompt_token_ids, params, lora, emit, cancelled))
            try:
                while True:
                    item = await queue.get()
                    if isinstance(item, BaseException):
                        raise item
                    yield item
                    if item.finish_reason:
                        break
            finally:
                cancelled.set()  # a cancelled or abandoned request stops decoding
                await asyncio.shield(worker)

    def _decode(self, prompt_token_ids: list[int], params: GenerationParams, lora: LoraHandle | None,
                emit: Callable[[Step | BaseException], None], cancelled: threading.Event) -> None:
        torch = self._torch
        try:
            model, tok = self._model, self._tokenizer
            ids = torch.tensor([prompt_token_ids], device=self._device)
            n_prompt = ids.shape[1]
            adapter_ctx: contextlib.AbstractContextManager = contextlib.nullcontext()
            if lora is not None:
                if lora.name not in self._adapters:
                    raise EngineUnavailable(f"adapter {lora.name} is not loaded")
                model.set_adapter(lora.name)
            elif self._adapters:
                adapter_ctx = model.disable_adapter()
            generator = torch.Generator(device=self._device)
            if params.seed is not None:
                generator.manual_seed(params.seed)
            generated: list[int] = []
            text, logprob_sum, past, step_input = "", 0.0, None, ids
            with torch.no_grad(), adapter_ctx:
                for _ in range(params.max_tokens):
                    if cancelled.is_set():
                        return
                    out = model(input_ids=step_input, past_key_values=past, use_cache=True)
                    past = out.past_key_values
                    logprobs = torch.log_softmax(out.logits[0, -1].float(), dim=-1)
                    if len(generated) < params.min_tokens and tok.eos_token_id is not None:
                        logprobs[tok.eos_token_id] = float("-inf")
                    token = self._pick(logprobs, params, generator)
                    logprob_sum += float(logprobs[token])
                    mine = ((token, float(logprobs[token])),) if params.logprobs else ()
                    if token == tok.eos_token_id:
                        emit(Step("", n_prompt, len(generated) + 1, logprob_sum, "stop", mine))
                        return
                    generated.append(token)
                    new_text = tok.decode(generated, skip_special_tokens=True)
                    delta, text = new_text[len(text):], new_text
                    hit = next((s for s in params.stop if s in text), None)
                    if hit is not None:
                        cut = text.index(hit)
                        emit(Step(delta[: max(0, len(delta) - (len(text) - cut))], n_prompt, len(generated),
                                  logprob_sum, "stop", mine))
                        return
                    finish = "length" if len(generated) == params.max_tokens else None
                    emit(Step(delta, n_prompt, len(generated), logprob_sum, finish, mine))
                    step_input = torch.tensor([[token]], device=self._device)
        except BaseException as exc:  # surfaced to the awaiting request
            emit(exc)

    def _pick(self, logprobs, params: GenerationParams, generator) -> int:
        torch = self._torch
        if params.temperature == 0.0:
            return int(torch.argmax(logprobs))
        probs = torch.softmax(logprobs / params.temperature, dim=-1)
        if params.top_p < 1.0:
            sorted_p, order = torch.sort(probs, descending=True)
            keep = torch.cumsum(sorted_p, dim=-1) - sorted_p < params.top_p
            probs = torch.zeros_like(probs).scatter(0, order[keep], sorted_p[keep])
            probs = probs / probs.sum()
        return int(torch.multinomial(probs, 1, generator=generator))
