"""Benchmark: how often the monitor's input-drift test raises a false alarm on traffic that has not
changed, per window and per trigger policy — and, with ``--mix``, how often and how soon it
catches a partial shift.

    make bench-false-alarms    (or: python -m bench.false_alarms [--runs 300] [--windows 15]
                                [--backends alibi,scipy] [--embed-max 100,50] [--streaks 1,2,3]
                                [--mix 0.2])

Each run is one stream as the monitor sees it: a reference of ``REFERENCE_SIZE`` in-distribution
prompts of the demo's riders (``driftloop.demo.traffic``, old world only), then ``--windows``
windows of ``WINDOW_SIZE`` more, each tested against the reference by the monitor's own backend
(``driftloop.monitor.backends``) on MiniLM embeddings (the monitor's embedder). A window's prompts
are sampled for embedding the way the monitor does (``shedding.embedding_draw`` below
``--embed-max / WINDOW_SIZE``). Printed: windows that drifted (the test's real false-positive
rate; nominal ``P_VALUE``) and runs that hold 1, 2, 3 drifted windows in a row (a false trigger
under ``SUSTAINED_WINDOWS`` = that many). Several ``--embed-max`` values are tested on the same
streams, side by side.

``--mix F``: every window prompt is a new-world one (``shifted``) with probability F, the
reference still old-world only — a partial shift, smaller than the demo's (F = 1). Then
"drifted" is the test's power, and the runs with a streak of ``SUSTAINED_WINDOWS`` are the runs
that trigger, printed with the median number of windows they took (the detection delay).

The statistics only: no broker, no monitor process (a run through the real process is
``tests/integration/monitor/test_drift.py``). Not a pass/fail test.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from pathlib import Path

import numpy as np

from bench.stats import first_streak, load, streak_runs
from driftloop.core.embedding import Embedder
from driftloop.demo.traffic import prompt
from driftloop.monitor.backends import create_backend
from driftloop.monitor.settings import MonitorSettings
from driftloop.monitor.shedding import embedding_draw


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=300)
    ap.add_argument("--windows", type=int, default=15, help="windows per run after the reference")
    ap.add_argument("--backends", default="alibi,scipy")
    ap.add_argument("--embed-max", default=None,
                    help="EMBED_MAX_PER_WINDOW values, comma-separated (default: the monitor's)")
    ap.add_argument("--streaks", default="1,2,3")
    ap.add_argument("--mix", type=float, default=0.0, help="share of new-world prompts in every window (0: none)")
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--out", type=Path, default=Path("reports/bench-false-alarms.json"))
    args = ap.parse_args()
    s = MonitorSettings()
    embed_maxes = [int(x) for x in args.embed_max.split(",")] if args.embed_max else [s.embed_max_per_window]
    streaks = [int(x) for x in args.streaks.split(",")]
    print(f"load average before: {load()}; reference {s.reference_size}, window {s.window_size}, "
          f"p < {s.p_value}, {s.mmd_permutations} permutations, EMBED_MAX_PER_WINDOW {embed_maxes}, "
          f"new-world share of each window {args.mix:.2f}")

    rng, mix_rng = random.Random(args.seed), random.Random(args.seed + 1)
    per_run = s.reference_size + args.windows * s.window_size
    texts = [prompt(rng, args.mix > 0 and i % per_run >= s.reference_size and mix_rng.random() < args.mix)
             for i in range(args.runs * per_run)]
    unique = sorted(set(texts))  # the riders' prompts repeat: embed each once
    vectors = Embedder(s.embed_batch_size).embed(unique)
    index = {t: i for i, t in enumerate(unique)}
    embedded = vectors[[index[t] for t in texts]]
    draws = np.array([embedding_draw(f"fa-{i}") for i in range(len(texts))])

    report = {"date": time.strftime("%Y-%m-%d %H:%M"), "load_before": load(), "runs": args.runs,
              "windows": args.windows, "mix": args.mix, "unique_prompts": len(unique), "results": []}
    for name in args.backends.split(","):
        backend = create_backend(name, s.p_value, s.mmd_permutations)
        for embed_max in embed_maxes:
            keep = draws < min(1.0, embed_max / s.window_size)
            t0 = time.perf_counter()
            verdicts = []
            for r in range(args.runs):
                base = r * per_run
                prepared = backend.prepare_mmd(embedded[base:base + s.reference_size])
                run = []
                for w in range(args.windows):
                    lo = base + s.reference_size + w * s.window_size
                    window = embedded[lo:lo + s.window_size][keep[lo:lo + s.window_size]]
                    run.append(len(window) >= s.mmd_min_window and backend.mmd(prepared, window).detected)
                verdicts.append(run)
            drifted = sum(map(sum, verdicts))
            total = args.runs * args.windows
            delays = [d for run in verdicts if (d := first_streak(run, s.sustained_windows)) is not None]
            row = {"backend": name, "embed_max_per_window": embed_max, "windows_drifted": drifted, "windows": total,
                   "rate": drifted / total, "runs_with_streak": {k: streak_runs(verdicts, k) for k in streaks},
                   "median_windows_to_trigger": statistics.median_high(delays) if delays else None,
                   "seconds": round(time.perf_counter() - t0, 1)}
            report["results"].append(row)
            print(f"{name:>6} EMBED_MAX_PER_WINDOW {embed_max}: {drifted}/{total} windows drifted "
                  f"({drifted / total:.2%}, nominal {s.p_value:.0%} on unchanged traffic); runs with a streak of "
                  + ", ".join(f"{k}: {v}/{args.runs}" for k, v in row["runs_with_streak"].items())
                  + (f"; median windows to a trigger ({s.sustained_windows} in a row) "
                     f"{row['median_windows_to_trigger']}" if delays else "") + f"  ({row['seconds']} s)")
    print(f"load average after: {load()}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(f"report: {args.out}")


if __name__ == "__main__":
    main()
