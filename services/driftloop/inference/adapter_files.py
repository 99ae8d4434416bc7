"""What an adapter directory must hold before the engine ever sees it: the validation of LoadAdapter
and of every rollout record (path inside the adapter root, LoRA config, rank, target modules,
tensor shapes read from the safetensors header, and the content digest)."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from safetensors import safe_open

from driftloop.core import ids
from driftloop.inference.errors import InvalidAdapter, InvalidRequest, NotFound

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"


@dataclass(frozen=True)
class AdapterManifest:
    """What validation learnt about an adapter directory."""

    path: Path
    rank: int
    target_modules: tuple[str, ...]
    sha256: str


def resolve_inside(root: Path, path: str) -> Path:
    """Resolve ``path`` (relative to ``root`` or absolute) and refuse anything outside ``root``."""
    if not path:
        raise InvalidRequest("adapter path is empty")
    if len(path) > 1024 or "\x00" in path:
        raise InvalidRequest("adapter path must be at most 1024 characters, without NUL")
    root = root.resolve()
    candidate = Path(path)
    resolved = (candidate if candidate.is_absolute() else root / candidate).resolve()
    if resolved != root and root not in resolved.parents:
        raise InvalidRequest(f"adapter path {ids.shown(path)} lies outside the adapter root")
    return resolved


def directory_sha256(directory: Path) -> str:
    """Identity of an adapter: its config and weights (not the registry's metadata beside them)."""
    digest = hashlib.sha256()
    for f in (directory / ADAPTER_CONFIG, directory / ADAPTER_WEIGHTS):
        digest.update(f.name.encode() + b"\0")
        with f.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def _tensor_shapes(path: Path) -> dict[str, list[int]]:
    """Tensor name -> shape, from the safetensors header only (no tensor is read)."""
    try:
        with safe_open(path, framework="numpy") as f:
            return {name: list(f.get_slice(name).get_shape()) for name in f.keys()}  # noqa: SIM118 - safe_open is not iterable
    except Exception as exc:  # noqa: BLE001 - safetensors raises its own error types for any malformed file
        raise InvalidAdapter(f"{path.name} is not a safetensors file: {type(exc).__name__}: {exc}") from None


def validate_adapter(
    root: Path, path: str, max_rank: int, base_modules: Iterable[str], expected_sha256: str = ""
) -> AdapterManifest:
    """Check an adapter directory before the engine ever sees it; raise a domain error otherwise."""
    directory = resolve_inside(root, path)
    if not directory.is_dir():
        raise NotFound(f"adapter directory {ids.shown(path)} does not exist")
    config_path = directory / ADAPTER_CONFIG
    weights_path = directory / ADAPTER_WEIGHTS
    if not config_path.is_file():
        raise InvalidAdapter(f"{ADAPTER_CONFIG} missing in {ids.shown(path)}")
    if not weights_path.is_file():
        raise InvalidAdapter(f"{ADAPTER_WEIGHTS} missing in {ids.shown(path)}")
    try:
        config = json.loads(config_path.read_text())
    except (OSError, ValueError) as exc:
        raise InvalidAdapter(f"{ADAPTER_CONFIG} is not valid JSON: {exc}") from exc
    if not isinstance(config, dict) or config.get("peft_type") != "LORA":
        kind = config.get("peft_type") if isinstance(config, dict) else None
        raise InvalidAdapter(f"not a LoRA adapter (peft_type={kind!r})")
    rank = config.get("r")
    if not isinstance(rank, int) or rank < 1:
        raise InvalidAdapter(f"invalid LoRA rank {rank!r}")
    if rank > max_rank:
        raise InvalidAdapter(f"LoRA rank {rank} exceeds the engine's maximum {max_rank}")
    if config.get("modules_to_save"):
        raise InvalidAdapter("modules_to_save is not supported by the serving engine")
    known = set(base_modules)
    targets = config.get("target_modules")
    if isinstance(targets, str):
        matched = tuple(sorted(m for m in known if re.fullmatch(targets, m)))
        if not matched:
            raise InvalidAdapter(f"target_modules pattern {targets!r} matches no module of the base model")
        targets_t = matched
    elif isinstance(targets, list) and targets and all(isinstance(t, str) for t in targets):
        unknown = sorted(set(targets) - known)
        if unknown:
            raise InvalidAdapter(f"target modules {unknown} do not exist in the base model")
        targets_t = tuple(sorted(targets))
    else:
        raise InvalidAdapter(f"invalid target_modules {targets!r}")
    tensors = _tensor_shapes(weights_path)
    lora_a = {k: v for k, v in tensors.items() if "lora_A" in k}
    if not lora_a or not any("lora_B" in k for k in tensors):
        raise InvalidAdapter(f"{ADAPTER_WEIGHTS} holds no lora_A/lora_B tensors")
    for name, shape in lora_a.items():
        if not shape or shape[0] != rank:
            raise InvalidAdapter(f"tensor {name} has shape {shape}, expected rank {rank} first")
        if not any(f".{m}." in name for m in targets_t):
            raise InvalidAdapter(f"tensor {name} targets a module outside target_modules")
    sha = directory_sha256(directory)
    if expected_sha256 and sha != expected_sha256:
        raise InvalidAdapter(f"sha256 mismatch: expected {expected_sha256}, found {sha}")
    return AdapterManifest(directory, rank, targets_t, sha)
