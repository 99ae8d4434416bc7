"""Adapter validation and the registry's routing rules (no engine: add/remove are recorded)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from driftloop.core.ids import request_bucket
from driftloop.inference.adapter_files import validate_adapter
from driftloop.inference.adapters import AdapterRegistry
from driftloop.inference.errors import AlreadyExists, FailedPrecondition, InvalidAdapter, InvalidRequest, NotFound

MODULES = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}


def write_adapter(d: Path, rank: int = 4, targets=("q_proj", "v_proj"), **config) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    cfg = {"peft_type": "LORA", "r": rank, "lora_alpha": 8, "target_modules": list(targets), **config}
    (d / "adapter_config.json").write_text(json.dumps(cfg))
    tensors = {}
    for t in targets:
        prefix = f"base_model.model.model.layers.0.self_attn.{t}"
        tensors[f"{prefix}.lora_A.weight"] = torch.zeros(rank, 16)
        tensors[f"{prefix}.lora_B.weight"] = torch.zeros(16, rank)
    save_file(tensors, str(d / "adapter_model.safetensors"))
    return d


def test_valid_adapter(tmp_path: Path) -> None:
    write_adapter(tmp_path / "a" / "v1")
    m = validate_adapter(tmp_path, "a/v1", 8, MODULES)
    assert m.rank == 4 and m.target_modules == ("q_proj", "v_proj") and len(m.sha256) == 64
    assert validate_adapter(tmp_path, str(tmp_path / "a" / "v1"), 8, MODULES, m.sha256).path == m.path


@pytest.mark.parametrize(
    ("make", "path", "error"),
    [
        (lambda d: None, "../x", InvalidRequest),
        (lambda d: None, "/etc", InvalidRequest),
        (lambda d: None, "", InvalidRequest),
        (lambda d: None, "missing", NotFound),
        (lambda d: write_adapter(d, rank=32), "x", InvalidAdapter),
        (lambda d: write_adapter(d, targets=("fc1",)), "x", InvalidAdapter),
        (lambda d: write_adapter(d, target_modules=".*nothing.*"), "x", InvalidAdapter),
        (lambda d: write_adapter(d, peft_type="IA3"), "x", InvalidAdapter),
        (lambda d: write_adapter(d, modules_to_save=["lm_head"]), "x", InvalidAdapter),
        (lambda d: (write_adapter(d), (d / "adapter_model.safetensors").unlink()), "x", InvalidAdapter),
        (lambda d: (write_adapter(d), (d / "adapter_config.json").write_text("[")), "x", InvalidAdapter),
        (lambda d: (write_adapter(d), (d / "adapter_model.safetensors").write_bytes(b"\x01" * 9)), "x",
         InvalidAdapter),
        (lambda d: (write_adapter(d), (d / "adapter_config.json").write_text(
            json.dumps({"peft_type": "LORA", "r": 2, "target_modules": ["q_proj", "v_proj"]}))), "x", InvalidAdapter),
    ],
    ids=["traversal", "absolute-outside", "empty", "missing", "rank", "unknown-module", "regex-matches-nothing",
         "not-lora", "modules-to-save", "no-weights", "bad-json", "bad-safetensors", "rank-shape-mismatch"],
)
def test_invalid_adapters(tmp_path: Path, make, path, error) -> None:
    make(tmp_path / "x")
    with pytest.raises(error):
        validate_adapter(tmp_path, path, 8, MODULES)


def test_symlink_escaping_the_root_is_refused(tmp_path: Path) -> None:
    outside = write_adapter(tmp_path / "outside")
    root = tmp_path / "root"
    root.mkdir()
    (root / "link").symlink_to(outside)
    with pytest.raises(InvalidRequest):
        validate_adapter(root, "link", 8, MODULES)


def test_sha_mismatch(tmp_path: Path) -> None:
    write_adapter(tmp_path / "x")
    with pytest.raises(InvalidAdapter):
        validate_adapter(tmp_path, "x", 8, MODULES, "0" * 64)


def _registry(root: Path, log: list) -> AdapterRegistry:
    async def add(v):
        log.append(("add", v.lora_name, v.lora_int_id))

    async def remove(v):
        log.append(("remove", v.lora_name, v.lora_int_id))

    return AdapterRegistry(root, 8, MODULES, add, remove)


def test_routing_canary_and_drain(tmp_path: Path) -> None:
    for v in ("v1", "v2"):
        write_adapter(tmp_path / v)
    log: list = []

    async def scenario() -> None:
        reg = _registry(tmp_path, log)
        with pytest.raises(NotFound):
            reg.acquire("a", "", "r1")
        assert reg.acquire("", "", "r1") is None
        v1 = await reg.load("a", "v1", "v1")
        assert await reg.load("a", "v1", "v1") is v1  # idempotent
        with pytest.raises(AlreadyExists):
            await reg.load("a", "v1", "v2")
        with pytest.raises(FailedPrecondition):
            reg.set_route("a", "v2")
        reg.set_route("a", "v1")
        v2 = await reg.load("a", "v2", "v2")
        assert v2.lora_int_id != v1.lora_int_id
        route = reg.set_route("a", "v1", "v2", 0.25)
        assert route.generation == 2
        picks = [reg.acquire("a", "", f"req-{i}") for i in range(400)]
        share = sum(p is v2 for p in picks) / len(picks)
        assert 0.18 < share < 0.32
        for i, p in enumerate(picks):
            assert p is (v2 if request_bucket(f"req-{i}") < 0.25 else v1)
        for p in picks:
            reg.release(p)
        held = reg.acquire("a", "", "held")  # a request in flight on v1
        assert held is v1 or held is v2
        reg.set_route("a", "v2")
        with pytest.raises(FailedPrecondition):
            await reg.unload("a", "v2")  # routed
        unload = asyncio.ensure_future(reg.unload("a", "v1"))
        await asyncio.sleep(0.05)
        if held is v1:
            assert not unload.done() and v1.draining
            with pytest.raises(NotFound):
                reg.acquire("a", "v1", "pin")  # draining versions take no new requests
        reg.release(held)
        await asyncio.wait_for(unload, 1)
        assert [v.version for v in reg.versions("a")] == ["v2"]
        assert log[-1][0] == "remove" and log[-1][1] == "a@v1"

    asyncio.run(scenario())


def test_route_argument_checks(tmp_path: Path) -> None:
    write_adapter(tmp_path / "v1")

    async def scenario() -> None:
        reg = _registry(tmp_path, [])
        await reg.load("a", "v1", "v1")
        for args in [("a", ""), ("a", "v1", "", 0.5), ("a", "v1", "v1", 0.1), ("a", "v1", "x", 1.5),
                     ("bad alias", "v1")]:
            with pytest.raises(InvalidRequest):
                reg.set_route(*args)
        with pytest.raises(InvalidRequest):
            await reg.load("a", "../v", "v1")

    asyncio.run(scenario())


def test_identity_ignores_files_beside_the_adapter(tmp_path: Path) -> None:
    write_adapter(tmp_path / "v1")
    before = validate_adapter(tmp_path, "v1", 8, MODULES).sha256
    (tmp_path / "v1" / "status.json").write_text('[{"status": "promoted"}]')  # the registry's own files
    assert validate_adapter(tmp_path, "v1", 8, MODULES).sha256 == before
