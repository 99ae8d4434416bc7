"""Benchmark: what the sampled tokens' logprobs cost vLLM's engine API itself — no server at all.

    make bench-logprobs      (or: python -m bench.logprobs [--levels 1:64,8:320,32:960] [--rounds 4])

driftloop asks its engine for every sampled token's logprob (``SamplingParams(logprobs=0)``): the
monitor's mean-logprob signal. vLLM's own server asks for none by default. This runs vLLM's
``AsyncLLM`` in this process, started with driftloop's engine arguments (LoRA enabled, float32,
the server's usage context) but without any driftloop code (not even its CPU LoRA fix), and sends
the same requests as driftloop's engine adapter (FINAL_ONLY, decoded once at the end) three ways:
``logprobs=None``, ``logprobs=0``, and ``logprobs=0`` in vLLM's flat lists
(``flat_logprobs=True``, what driftloop asks for) — nothing else differs: no gRPC, no HTTP, no
events. Variants run back to back within each round, in an order that rotates from round to
round; the ratio to ``None`` is taken within a round and the median (min–max) over rounds is
printed, with the CPU per request of this process (vLLM's client: input processing, output
handler). The engine core's own CPU is not a per-request figure here: its processes busy-poll
while requests are in flight.

``--profile S`` (what ``make bench-logprobs`` passes) then shows where the difference goes: at
the highest concurrency, ``logprobs=None`` and the flat logprobs run S seconds each, twice (A B B
A), while py-spy samples vLLM's three processes (this one — the client —, the engine core and its
worker); every stack goes to a stage (bench/pyspy.py's ``VLLM_CATEGORIES``), printed as
milliseconds of a thread per 1,000 tokens produced, with the difference. py-spy slows everything
down (three samplers on two cores: the tokens/s under py-spy are printed), so only the
differences between the two variants mean much. py-spy comes from ``make py-spy``; without it the
profile is skipped with a message.

Not a pass/fail test. Refuses a busy machine (``--max-load`` per core).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import asdict
from functools import partial
from pathlib import Path

from bench import pyspy
from bench.load import Result, process_cpu_seconds, prompts, rounds, run_load
from bench.stats import load, paired_ratios, refuse_if_busy, spread
from driftloop.local.tiny_model import build

MAX_TOKENS = 32
LABELS = {"none": "logprobs=None (vLLM server default)", "zero": "logprobs=0",
          "flat": "logprobs=0, flat_logprobs=True"}


async def start_engine(model: Path):
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    os.environ.setdefault("VLLM_NO_USAGE_STATS", "1")
    os.environ.setdefault("VLLM_HOST_IP", "127.0.0.1")
    from vllm.engine.arg_utils import AsyncEngineArgs
    from vllm.usage.usage_lib import UsageContext
    from vllm.v1.engine.async_llm import AsyncLLM

    args = AsyncEngineArgs(model=str(model), served_model_name="bench", dtype="float32", max_model_len=256,
                           enable_lora=True, max_loras=2, max_lora_rank=8, disable_log_stats=True, seed=0)
    return AsyncLLM.from_engine_args(args, usage_context=UsageContext.OPENAI_API_SERVER)


def engine_call(llm, tokenizer, logprobs: int | None, flat: bool = False):
    """One request the way driftloop's engine adapter makes it (FINAL_ONLY, decoded once at the
    end), with or without the sampled tokens' logprobs."""
    from vllm import SamplingParams
    from vllm.sampling_params import RequestOutputKind

    async def call(i: int, prompt: str) -> int:
        sp = SamplingParams(max_tokens=MAX_TOKENS, min_tokens=MAX_TOKENS, temperature=0.0, logprobs=logprobs,
                            output_kind=RequestOutputKind.FINAL_ONLY, detokenize=False,
                            flat_logprobs=flat)
        ids = tokenizer.encode(prompt)
        produced = 0
        async for out in llm.generate({"prompt_token_ids": ids}, sp, uuid.uuid4().hex):
            produced += len(out.outputs[0].token_ids)
            tokenizer.decode(out.outputs[0].token_ids, skip_special_tokens=True)
        return produced
    return call


PROFILE_RATE = 50  # py-spy samples per second and thread: three samplers share the two cores with the load
PROFILED = ("none", "flat")  # vLLM's server default against what driftloop asks


def per_1k_tokens(samples: dict[str, int], tokens: float, rate: int = PROFILE_RATE) -> dict[str, float]:
    """Milliseconds of a thread per 1,000 tokens produced, per stage: ``samples`` py-spy samples at
    ``rate`` per second and thread while ``tokens`` tokens came out."""
    return {stage: 1e3 * n / rate / (tokens / 1e3) for stage, n in samples.items()}


def engine_pids() -> dict[str, int]:
    """This process (vLLM's client) and the engine's two children on CPU."""
    import psutil

    kids = psutil.Process().children(recursive=True)
    pids = {"client": os.getpid()}
    for label, name in (("engine core", "EngineCore"), ("worker", "Worker")):
        pids[label] = next(k.pid for k in kids if name in k.name())
    return pids


async def profile(calls: dict, concurrency: int, seconds: int, work: Path) -> dict[str, dict]:
    """``logprobs=None`` and the flat logprobs under load, A B B A, ``seconds`` each time, while
    py-spy samples the three processes; samples and tokens summed per variant."""
    pids = engine_pids()
    samples = {key: {label: Counter() for label in pids} for key in PROFILED}
    tokens = dict.fromkeys(PROFILED, 0.0)
    for i, key in enumerate([*PROFILED, *reversed(PROFILED)]):
        files = {label: work / f"profile-{i}-{key}-{label.replace(' ', '-')}.txt" for label in pids}
        spies = [pyspy.start(pid, seconds, files[label], rate=PROFILE_RATE) for label, pid in pids.items()]
        produced, t0 = 0, time.perf_counter()
        while any(s.poll() is None for s in spies):
            produced += (await run_load(calls[key], prompts(4 * concurrency), concurrency, key)).completion_tokens
        tokens_per_s = produced / (time.perf_counter() - t0)
        if failed := [label for label, spy in zip(pids, spies, strict=True) if spy.returncode]:
            raise SystemExit(f"py-spy could not sample {', '.join(failed)} (it needs ptrace: run as the "
                             "processes' owner, with CAP_SYS_PTRACE where ptrace is restricted)")
        tokens[key] += tokens_per_s * seconds  # produced while py-spy sampled
        for label, f in files.items():
            samples[key][label] += pyspy.samples_by_category(pyspy.parse(f.read_text().splitlines()))
        print(f"   profile c={concurrency} {LABELS[key]}: {tokens_per_s:,.0f} tok/s under py-spy", flush=True)
    return {key: {"tokens_per_s": tokens[key] / (2 * seconds),
                  "ms_per_1k_tokens": {label: per_1k_tokens(samples[key][label], tokens[key]) for label in pids}}
            for key in PROFILED}


def profile_table(profiles: dict[str, dict]) -> list[str]:
    """One row per process and stage: ms per 1,000 tokens for each variant and flat − none."""
    keys = [k for k in LABELS if k in profiles]
    lines = ["process | stage | " + " | ".join(keys) + (" | flat − none" if {"flat", "none"} <= set(keys) else "")]
    for proc in profiles[keys[0]]["ms_per_1k_tokens"]:
        ms = {k: profiles[k]["ms_per_1k_tokens"][proc] for k in keys}
        stages = sorted({stage for k in keys for stage in ms[k]}, key=lambda stage: -ms[keys[0]].get(stage, 0.0))
        for stage in [*stages, "total"]:
            vals = {k: sum(ms[k].values()) if stage == "total" else ms[k].get(stage, 0.0) for k in keys}
            row = f"{proc} | {stage} | " + " | ".join(f"{vals[k]:.0f}" for k in keys)
            if "flat" in vals and "none" in vals:
                row += f" | {vals['flat'] - vals['none']:+.0f}"
            lines.append(row)
    return lines


async def measure(model: Path, levels: list[tuple[int, int]], n_rounds: int, settle_s: float,
                  profile_s: int = 0, work: Path | None = None) -> tuple[list[Result], dict]:
    llm = await start_engine(model)
    try:
        tokenizer = llm.get_tokenizer()
        calls = {"none": engine_call(llm, tokenizer, None), "zero": engine_call(llm, tokenizer, 0),
                 "flat": engine_call(llm, tokenizer, 0, flat=True)}
        me = os.getpid()
        for c, n in levels:  # new batch shapes compile on first use
            for call in calls.values():
                await run_load(call, prompts(min(n, 4 * c)), c, "warm-up")
        results: list[Result] = []
        for c, n in levels:
            for r, order in enumerate(rounds(list(calls), n_rounds)):
                for key in order:
                    await asyncio.sleep(settle_s)
                    res = await run_load(calls[key], prompts(n), c, key, round_=r,
                                         server_cpu=partial(process_cpu_seconds, me))
                    print(f"   c={c} round {r + 1} {LABELS[key]}: {res.tokens_per_s:,.0f} tok/s, p99 "
                          f"{res.p99_ms:.0f} ms, client CPU {res.server_cpu_ms_per_request:.2f} ms/request",
                          flush=True)
                    results.append(res)
        profiles = {}
        if profile_s and pyspy.executable() is None:
            print("   py-spy not installed (make py-spy): no profile", flush=True)
        elif profile_s:
            profiles = await profile(calls, max(c for c, _ in levels), profile_s, work)
        return results, profiles
    finally:
        llm.shutdown()


def summary(results: list[Result], levels: list[tuple[int, int]]) -> list[str]:
    lines = []
    for c, _ in levels:
        cell = {key: {r.round: r for r in results if r.target == key and r.concurrency == c} for key in LABELS}
        tps = {key: {i: r.tokens_per_s for i, r in rs.items()} for key, rs in cell.items()}
        against = []
        for key in ("zero", "flat"):
            lo, med, hi = spread(paired_ratios(tps[key], tps["none"]))
            against.append(f"{key} {med:.2f} ({lo:.2f}–{hi:.2f})")
        parts = [f"c={c}: tokens/s against logprobs=None, median (min–max) of the rounds' ratios: "
                 + ", ".join(against)]
        for key in LABELS:
            rs = list(cell[key].values())
            t = spread([r.tokens_per_s for r in rs])[1]
            client = spread([r.server_cpu_ms_per_request for r in rs])[1]
            p99 = spread([r.p99_ms for r in rs])[1]
            parts.append(f"{key}: {t:,.0f} tok/s, p99 {p99:.0f} ms, client {client:.2f} ms CPU/request")
        lines.append("; ".join(parts))
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--levels", default="1:64,8:320,32:960", help="concurrency:requests,...")
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--max-load", type=float, default=0.5, help="refuse above this 1-minute load per core")
    ap.add_argument("--profile", type=int, default=0, metavar="S",
                    help="then S seconds per variant under py-spy at the highest concurrency")
    ap.add_argument("--force", action="store_true")
    ap.add_argument("--out", type=Path, default=Path("reports/bench-logprobs.json"))
    a = ap.parse_args()
    refuse_if_busy(a.max_load, a.force)  # a forced busy run shows in the load printed with the figures
    load_before, started = load(), time.strftime("%Y-%m-%d %H:%M")
    levels = [tuple(int(x) for x in part.split(":")) for part in a.levels.split(",")]
    work = Path(tempfile.mkdtemp(prefix="driftloop-bench-logprobs-"))
    model = build(work / "model", hidden=128, layers=2, heads=4)
    results, profiles = asyncio.run(measure(model, levels, a.rounds, 2.0, a.profile, work))
    print()
    lines = summary(results, levels)
    if profiles:
        c = max(c for c, _ in levels)
        lines += [f"py-spy, 2 x {a.profile} s per variant at c={c} (A B B A), {PROFILE_RATE} Hz: ms of a thread "
                  "per 1,000 tokens (the core and the worker spin while they wait for each other; tokens/s under "
                  "py-spy: " + ", ".join(f"{k} {p['tokens_per_s']:,.0f}" for k, p in profiles.items()) + ")",
                  *profile_table(profiles)]
    lines.append(f"load average before: {', '.join(f'{x:.2f}' for x in load_before)}; {started}; "
                 f"{a.rounds} rounds")
    print("\n".join(lines))
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps({"date": started, "load_before": load_before, "summary": lines, "profiles": profiles,
                                 "results": [asdict(r) | {"tokens_per_s": r.tokens_per_s} for r in results]},
                                indent=2))


if __name__ == "__main__":
    main()
