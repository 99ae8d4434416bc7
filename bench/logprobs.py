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
from dataclasses import asdict
from functools import partial
from pathlib import Path

from bench.load import Result, process_cpu_seconds, prompts, rounds, run_load
from bench.stats import busy, load, paired_ratios, spread
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


async def measure(model: Path, levels: list[tuple[int, int]], n_rounds: int, settle_s: float) -> list[Result]:
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
        return results
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
    ap.add_argument("--force", action="store_true")
    ap.add_argument("--out", type=Path, default=Path("reports/bench-logprobs.json"))
    a = ap.parse_args()
    too_busy = busy(a.max_load)
    if too_busy and not a.force:
        raise SystemExit(f"machine busy: {too_busy}; stop the other jobs (or pass --force)")
    load_before, started = load(), time.strftime("%Y-%m-%d %H:%M")
    levels = [tuple(int(x) for x in part.split(":")) for part in a.levels.split(",")]
    work = Path(tempfile.mkdtemp(prefix="driftloop-bench-logprobs-"))
    model = build(work / "model", hidden=128, layers=2, heads=4)
    results = asyncio.run(measure(model, levels, a.rounds, settle_s=2.0))
    print()
    lines = summary(results, levels)
    lines.append(f"load average before: {', '.join(f'{x:.2f}' for x in load_before)}; {started}; "
                 f"{a.rounds} rounds")
    print("\n".join(lines))
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps({"date": started, "load_before": load_before, "summary": lines,
                                 "results": [asdict(r) | {"tokens_per_s": r.tokens_per_s} for r in results]},
                                indent=2))


if __name__ == "__main__":
    main()
