"""Benchmark: our gRPC inference service vs vLLM's own OpenAI server, same model, same load.

    make bench-inference      (or: python -m bench.inference [--model DIR] [--out reports/...])

Runs, one at a time on this machine: driftloop (gRPC, events on), driftloop (gRPC, events off),
vLLM's OpenAI-compatible server (`python -m vllm.entrypoints.openai.api_server`, what `vllm serve`
runs), each at several concurrencies with the same prompts, greedy decoding and max_tokens; then
one LoRA row for both. Every request generates exactly MAX_TOKENS tokens (min_tokens = max_tokens)
so both servers do the same work. Prints completion tokens/s and p50/p99 latency side by side and the ratios.
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
from dataclasses import asdict, dataclass
from pathlib import Path

import grpc

from driftloop.local.kafka import LocalKafka, LocalKafkaSettings, free_port
from driftloop.local.procs import ServiceProcess
from driftloop.local.tiny_model import build, make_lora
from driftloop.v1 import inference_pb2 as pb
from driftloop.v1 import inference_pb2_grpc

MAX_TOKENS = 32
WORDS = ["bus", "tram", "route 12", "line 4", "the depot", "city hall", "the airport", "sunday", "night"]


def prompts(n: int) -> list[str]:
    return [f"when does the {WORDS[i % len(WORDS)]} leave {WORDS[(i * 7) % len(WORDS)]} {i}" for i in range(n)]


@dataclass
class Result:
    target: str
    concurrency: int
    requests: int
    completion_tokens: int
    wall_s: float
    p50_ms: float
    p99_ms: float
    failures: int

    @property
    def tokens_per_s(self) -> float:
        return self.completion_tokens / self.wall_s


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


async def run_load(call, concurrency: int, n: int, label: str) -> Result:
    todo = list(enumerate(prompts(n)))
    latencies: list[float] = []
    tokens = failures = 0

    async def worker() -> None:
        nonlocal tokens, failures
        while todo:
            i, prompt = todo.pop()
            t0 = time.perf_counter()
            try:
                tokens += await call(i, prompt)
                latencies.append(time.perf_counter() - t0)
            except Exception as exc:  # noqa: BLE001 - counted and reported
                failures += 1
                if failures == 1:
                    print(f"  first failure on {label}: {exc!r}", file=sys.stderr)

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    wall = time.perf_counter() - t0
    return Result(label, concurrency, n, tokens, wall, percentile(latencies, 0.5) * 1e3,
                  percentile(latencies, 0.99) * 1e3, failures)


async def bench_grpc(address: str, label: str, levels: list[tuple[int, int]], alias: str = "") -> list[Result]:
    async with grpc.aio.insecure_channel(address) as channel:
        stub = inference_pb2_grpc.InferenceStub(channel)

        async def call(i: int, prompt: str) -> int:
            r = await stub.Generate(pb.GenerateRequest(
                prompt=prompt, adapter_alias=alias,
                sampling=pb.SamplingParams(max_tokens=MAX_TOKENS, min_tokens=MAX_TOKENS, temperature=0.0)),
                timeout=120)
            return r.usage.completion_tokens

        await run_load(call, 4, 16, "warm-up")
        return [await run_load(call, c, n, label) for c, n in levels]


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

        await run_load(call, 4, 16, "warm-up")
        return [await run_load(call, c, n, label) for c, n in levels]


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
    env = {
        "DRIFTLOOP_KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap,
        "DRIFTLOOP_INFERENCE_MODEL_PATH": str(model), "DRIFTLOOP_INFERENCE_MODEL_NAME": "bench",
        "DRIFTLOOP_INFERENCE_ADAPTER_ROOT": str(adapters), "DRIFTLOOP_INFERENCE_MAX_MODEL_LEN": "256",
        "DRIFTLOOP_INFERENCE_SPOOL_DIR": str(work / f"spool-{emit}"), "DRIFTLOOP_INFERENCE_PORT": "0",
        "DRIFTLOOP_INFERENCE_METRICS_PORT": "0", "DRIFTLOOP_INFERENCE_EMIT_EVENTS": str(emit).lower(),
        "DRIFTLOOP_INFERENCE_FOLLOW_ROLLOUTS": "false", "DRIFTLOOP_INFERENCE_MAX_TOKENS_LIMIT": "64",
        "DRIFTLOOP_INFERENCE_MAX_LORAS": "2", "DRIFTLOOP_INFERENCE_MAX_LORA_RANK": "8",
    }
    proc = ServiceProcess("driftloop", "driftloop.inference", env, log)
    proc.wait_ready(300)
    return proc


def table(results: list[Result]) -> str:
    lines = ["| target | concurrency | requests | failures | tokens/s | p50 ms | p99 ms |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        lines.append(f"| {r.target} | {r.concurrency} | {r.requests} | {r.failures} | {r.tokens_per_s:,.0f} | "
                     f"{r.p50_ms:.0f} | {r.p99_ms:.0f} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, help="HF model dir (default: a random 2-layer 128-d Llama)")
    ap.add_argument("--levels", default="1:48,8:160,32:320", help="concurrency:requests,...")
    ap.add_argument("--out", type=Path, default=Path("reports/bench-inference.json"))
    a = ap.parse_args()
    levels = [tuple(int(x) for x in part.split(":")) for part in a.levels.split(",")]
    work = Path(tempfile.mkdtemp(prefix="driftloop-bench-"))
    model = a.model or build(work / "model", hidden=128, layers=2, heads=4)
    adapters = work / "adapters"
    make_lora(model, adapters / "bench" / "v1", rank=8)
    broker = LocalKafka(LocalKafkaSettings(port=0, controller_port=0, state_dir=work / "kafka"))
    broker.start()
    results: list[Result] = []
    lora_level = [levels[1] if len(levels) > 1 else levels[0]]
    try:
        for emit in (True, False):
            label = f"driftloop gRPC, events {'on' if emit else 'off'}"
            print(f"== {label}", flush=True)
            proc = start_ours(model, adapters, broker, work, emit, work / f"ours-{emit}.log")
            try:
                results += asyncio.run(bench_grpc(proc.ready["grpc"], label, levels))
                if emit:
                    admin = inference_pb2_grpc.AdapterAdminStub(grpc.insecure_channel(proc.ready["grpc"]))
                    admin.LoadAdapter(pb.LoadAdapterRequest(adapter_alias="bench", version="v1", path="bench/v1"))
                    admin.SetRoute(pb.SetRouteRequest(adapter_alias="bench", stable_version="v1"))
                    results += asyncio.run(bench_grpc(proc.ready["grpc"], "driftloop gRPC, events on, LoRA",
                                                      lora_level, alias="bench"))
            finally:
                proc.stop()
        print("== vLLM OpenAI server", flush=True)
        port = free_port()
        env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_NO_USAGE_STATS": "1", "VLLM_HOST_IP": "127.0.0.1"}
        with (work / "vllm-serve.log").open("wb") as log:
            server = subprocess.Popen(
                [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(model),
                 "--served-model-name", "bench", "--dtype", "float32", "--max-model-len", "256", "--enforce-eager",
                 "--host", "127.0.0.1", "--port", str(port), "--max-num-seqs", "64", "--enable-lora",
                 "--max-loras", "2", "--max-lora-rank", "8",
                 "--lora-modules", f"bench-lora={adapters / 'bench' / 'v1'}", "--disable-log-stats"],
                env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            wait_http(f"http://127.0.0.1:{port}/health", server)
            results += asyncio.run(bench_openai(f"http://127.0.0.1:{port}", "bench", "vllm OpenAI server", levels))
            results += asyncio.run(bench_openai(f"http://127.0.0.1:{port}", "bench-lora", "vllm OpenAI server, LoRA",
                                                lora_level))
        finally:
            server.terminate()
            server.wait(60)
    finally:
        broker.stop()

    print()
    print(table(results))
    print()
    by = {(r.target, r.concurrency): r for r in results}
    ratio_lines = []
    for c, _ in levels:
        on, off = by.get(("driftloop gRPC, events on", c)), by.get(("driftloop gRPC, events off", c))
        ref = by.get(("vllm OpenAI server", c))
        if on and ref:
            ratio_lines.append(
                f"concurrency {c}: driftloop/vllm-serve tokens/s = {on.tokens_per_s / ref.tokens_per_s:.2f}; "
                f"events on/off = {on.tokens_per_s / off.tokens_per_s:.2f}")
    c = lora_level[0][0]
    lo, lr = by.get(("driftloop gRPC, events on, LoRA", c)), by.get(("vllm OpenAI server, LoRA", c))
    if lo and lr:
        ratio_lines.append(f"LoRA at concurrency {c}: driftloop/vllm-serve = {lo.tokens_per_s / lr.tokens_per_s:.2f}")
    print("\n".join(ratio_lines))
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps({"max_tokens": MAX_TOKENS, "model": str(model), "cpus": os.cpu_count(),
                                 "results": [asdict(r) | {"tokens_per_s": r.tokens_per_s} for r in results],
                                 "ratios": ratio_lines}, indent=2))
    print(f"\nwritten to {a.out}")


if __name__ == "__main__":
    main()
