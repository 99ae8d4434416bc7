"""Benchmark: our gRPC inference service vs vLLM's own OpenAI server, same model, same load.

    make bench-inference      (or: python -m bench.inference [--model DIR] [--out reports/...])

Runs, one at a time on this machine: driftloop (gRPC, events on), driftloop (gRPC, events off),
vLLM's OpenAI-compatible server (`python -m vllm.entrypoints.openai.api_server`, what `vllm serve`
runs), each at several concurrencies with the same prompts, greedy decoding and max_tokens; then
one LoRA row for both. Every request generates exactly MAX_TOKENS tokens (min_tokens = max_tokens)
so both servers do the same work. Each server runs with ITS OWN DEFAULTS (what a user runs) except
the settings that must match (model, dtype float32, max_model_len 256, LoRA slots and rank, 1 GiB
KV cache); the differences left are printed (`DEFAULTS`). Each level is repeated ``--repeats``
times; the table shows min / median tokens/s per cell and the ratios are of medians. Refuses to
start on a busy machine (``--max-load``, per core) and records the load it saw.
Not a pass/fail test: numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import asdict
from pathlib import Path

import grpc

from bench.load import Result, run_load
from bench.stats import busy, load, ratio, spread
from driftloop.core.settings import KafkaSettings, settings_env
from driftloop.inference.settings import InferenceSettings
from driftloop.local.kafka import LocalKafka, LocalKafkaSettings, free_port
from driftloop.local.procs import ServiceProcess
from driftloop.local.tiny_model import build, make_lora
from driftloop.v1 import inference_pb2 as pb
from driftloop.v1 import inference_pb2_grpc

MAX_TOKENS = 32
ADMIN_TOKEN = "bench-admin-token"
ADMIN_MD = (("authorization", f"Bearer {ADMIN_TOKEN}"),)
# What still differs between the two servers, each at its defaults.
DEFAULTS = ("driftloop: ENFORCE_EAGER=true (no compilation; faster start), MAX_NUM_SEQS=64",
            "vLLM server: compiled (no --enforce-eager), its own max-num-seqs default")
WORDS = ["bus", "tram", "route 12", "line 4", "the depot", "city hall", "the airport", "sunday", "night"]


def prompts(n: int) -> list[str]:
    return [f"when does the {WORDS[i % len(WORDS)]} leave {WORDS[(i * 7) % len(WORDS)]} {i}" for i in range(n)]


async def bench_grpc(address: str, label: str, levels: list[tuple[int, int]], alias: str = "") -> list[Result]:
    async with grpc.aio.insecure_channel(address) as channel:
        stub = inference_pb2_grpc.InferenceStub(channel)

        async def call(i: int, prompt: str) -> int:
            r = await stub.Generate(pb.GenerateRequest(
                prompt=prompt, adapter_alias=alias,
                sampling=pb.SamplingParams(max_tokens=MAX_TOKENS, min_tokens=MAX_TOKENS, temperature=0.0)),
                timeout=120)
            return r.usage.completion_tokens

        await run_load(call, prompts(16), 4, "warm-up")
        return [await run_load(call, prompts(n), c, label) for c, n in levels]


async def bench_openai(base_url: str, model: str, label: str, levels: list[tuple[int, int]]) -> list[Result]:
    import aiohttp

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=256)) as session:
        async def call(i: int, prompt: str) -> int:
            body = {"model": model, "prompt": prompt, "max_tokens": MAX_TOKENS, "min_tokens": MAX_TOKENS,
                    "temperature": 0.0}
            async with session.post(f"{base_url}/v1/completions", json=body) as resp:
                resp.raise_for_status()
                data = await resp.json()
            return int(data["usage"]["completion_tokens"])

        await run_load(call, prompts(16), 4, "warm-up")
        return [await run_load(call, prompts(n), c, label) for c, n in levels]


def wait_http(url: str, proc: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except OSError:
            time.sleep(1)
    raise RuntimeError(f"{url} not ready")


def start_ours(model: Path, adapters: Path, broker: LocalKafka, work: Path, emit: bool, log: Path) -> ServiceProcess:
    settings = InferenceSettings(
        kafka=KafkaSettings(bootstrap_servers=broker.bootstrap), model_path=model, model_name="bench",
        adapter_root=adapters, max_model_len=256, spool_dir=work / f"spool-{emit}", port=0, metrics_port=0,
        emit_events=emit, follow_rollouts=False, max_tokens_limit=64, max_loras=2, max_lora_rank=8,
        admin_token=ADMIN_TOKEN,
    )
    proc = ServiceProcess("driftloop", "driftloop.inference", settings_env(settings), log)
    proc.wait_ready(300)
    return proc


def table(results: list[Result]) -> str:
    """One row per target and concurrency: tokens/s min / median over the repeats, median p50/p99."""
    cells: dict[tuple[str, int], list[Result]] = {}
    for r in results:
        cells.setdefault((r.target, r.concurrency), []).append(r)
    lines = ["| target | concurrency | repeats × requests | failures | tokens/s min / median | p50 ms | p99 ms |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for (target, c), rs in cells.items():
        lo, med, _ = spread([r.tokens_per_s for r in rs])
        lines.append(f"| {target} | {c} | {len(rs)} × {rs[0].requests} | {sum(r.failures for r in rs)} | "
                     f"{lo:,.0f} / {med:,.0f} | {spread([r.p50_ms for r in rs])[1]:.0f} | "
                     f"{spread([r.p99_ms for r in rs])[1]:.0f} |")
    return "\n".join(lines)


def tps(results: list[Result], target: str, c: int) -> list[float]:
    return [r.tokens_per_s for r in results if r.target == target and r.concurrency == c]


def p99(results: list[Result], target: str, c: int) -> list[float]:
    return [r.p99_ms for r in results if r.target == target and r.concurrency == c]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, help="HF model dir (default: a random 2-layer 128-d Llama)")
    ap.add_argument("--levels", default="1:48,8:160,32:320", help="concurrency:requests,...")
    ap.add_argument("--repeats", type=int, default=3, help="runs of each level per target (min / median shown)")
    ap.add_argument("--max-load", type=float, default=0.5, help="refuse above this 1-minute load per core")
    ap.add_argument("--force", action="store_true", help="run on a busy machine anyway (figures are marked)")
    ap.add_argument("--out", type=Path, default=Path("reports/bench-inference.json"))
    a = ap.parse_args()
    too_busy = busy(a.max_load)
    if too_busy and not a.force:
        raise SystemExit(f"machine busy: {too_busy}; stop the other jobs (or pass --force)")
    load_before = load()
    levels = [tuple(int(x) for x in part.split(":")) for part in a.levels.split(",")]
    work = Path(tempfile.mkdtemp(prefix="driftloop-bench-"))
    model = a.model or build(work / "model", hidden=128, layers=2, heads=4)
    adapters = work / "adapters"
    make_lora(model, adapters / "bench" / "v1", rank=8)
    broker = LocalKafka(LocalKafkaSettings(port=0, controller_port=0, state_dir=work / "kafka"))
    broker.start()
    results: list[Result] = []
    lora_level = [levels[1] if len(levels) > 1 else levels[0]]
    repeated = [lv for lv in levels for _ in range(a.repeats)]
    try:
        results += run_ours(model, adapters, broker, work, repeated, lora_level * a.repeats)
        results += run_vllm(model, adapters, work, repeated, lora_level * a.repeats)
    finally:
        broker.stop()
    report(a, results, levels, lora_level, model, load_before, too_busy)


def run_ours(model: Path, adapters: Path, broker: LocalKafka, work: Path, levels, lora_levels) -> list[Result]:
    results: list[Result] = []
    for emit in (True, False):
        label = f"driftloop gRPC, events {'on' if emit else 'off'}"
        print(f"== {label}", flush=True)
        proc = start_ours(model, adapters, broker, work, emit, work / f"ours-{emit}.log")
        try:
            results += asyncio.run(bench_grpc(proc.ready["grpc"], label, levels))
            if emit:
                admin = inference_pb2_grpc.AdapterAdminStub(grpc.insecure_channel(proc.ready["grpc"]))
                admin.LoadAdapter(pb.LoadAdapterRequest(adapter_alias="bench", version="v1", path="bench/v1"),
                                  metadata=ADMIN_MD)
                admin.SetRoute(pb.SetRouteRequest(adapter_alias="bench", stable_version="v1"), metadata=ADMIN_MD)
                results += asyncio.run(bench_grpc(proc.ready["grpc"], "driftloop gRPC, events on, LoRA",
                                                  lora_levels, alias="bench"))
        finally:
            proc.stop()
    return results


def run_vllm(model: Path, adapters: Path, work: Path, levels, lora_levels) -> list[Result]:
    print("== vLLM OpenAI server (its defaults: compiled)", flush=True)
    port = free_port()
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_NO_USAGE_STATS": "1", "VLLM_HOST_IP": "127.0.0.1"}
    with (work / "vllm-serve.log").open("wb") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(model),
             "--served-model-name", "bench", "--dtype", "float32", "--max-model-len", "256",
             "--host", "127.0.0.1", "--port", str(port), "--enable-lora", "--max-loras", "2", "--max-lora-rank", "8",
             "--lora-modules", f"bench-lora={adapters / 'bench' / 'v1'}", "--disable-log-stats"],
            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        t0 = time.monotonic()
        wait_http(f"http://127.0.0.1:{port}/health", server, timeout=600)
        print(f"   ready after {time.monotonic() - t0:.0f} s", flush=True)
        base = f"http://127.0.0.1:{port}"
        return (asyncio.run(bench_openai(base, "bench", "vllm OpenAI server", levels))
                + asyncio.run(bench_openai(base, "bench-lora", "vllm OpenAI server, LoRA", lora_levels)))
    finally:
        server.terminate()
        server.wait(60)


def report(a, results: list[Result], levels, lora_level, model: Path, load_before, too_busy) -> None:
    load_after = load()
    print()
    print(table(results))
    print()
    on, off, ref = "driftloop gRPC, events on", "driftloop gRPC, events off", "vllm OpenAI server"
    lines = [f"concurrency {c}: driftloop/vllm-serve tokens/s = "
             f"{ratio(tps(results, on, c), tps(results, ref, c)):.2f}, "
             f"p99 = {ratio(p99(results, on, c), p99(results, ref, c)):.2f}; events on/off = "
             f"{ratio(tps(results, on, c), tps(results, off, c)):.2f}" for c, _ in levels]
    c = lora_level[0][0]
    lines.append(f"LoRA at concurrency {c}: driftloop/vllm-serve tokens/s = "
                 f"{ratio(tps(results, on + ', LoRA', c), tps(results, ref + ', LoRA', c)):.2f}")
    lines.append("settings that differ (each server's defaults): " + "; ".join(DEFAULTS))
    lines.append(f"load average (1, 5, 15 min): before {', '.join(f'{x:.2f}' for x in load_before)}; after "
                 f"{', '.join(f'{x:.2f}' for x in load_after)}" + (f"; RAN BUSY: {too_busy}" if too_busy else ""))
    print("\n".join(lines))
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps({"max_tokens": MAX_TOKENS, "model": str(model), "cpus": os.cpu_count(),
                                 "repeats": a.repeats, "date": time.strftime("%Y-%m-%d %H:%M"),
                                 "results": [asdict(r) | {"tokens_per_s": r.tokens_per_s} for r in results],
                                 "ratios": lines}, indent=2))
    print(f"\nwritten to {a.out}")


if __name__ == "__main__":
    main()
