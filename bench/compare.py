"""Do two runs of ``make bench-inference`` agree? Cell by cell (target × concurrency), how far the
second run's figures moved from the first's: the median tokens/s over the rounds, the best round's
tokens/s, and the median front-end CPU per request.

    python -m bench.compare reports/bench-inference-1.json reports/bench-inference-2.json

"Moved" is the larger over the smaller, minus one (the same whichever run comes first). Why the best
round beside the median: on these 2 vCPUs one server's cell, run back to back with nothing else
running, is bimodal — vLLM's own server alone at concurrency 32 gave 1,222–4,530 tokens/s over 25
cells, 6 of them under 2,600, and in a slow cell its engine core and worker burn 2–3× the CPU for the
same tokens (each spinning while it waits for the other). A slow cell only ever slows a figure down,
so the best round is the other natural summary. Neither agrees better every time (2026-12-07 12:04
and 12:31: medians 17 of 18 cells within 15 %, best rounds 15 of 18), so both are printed. Not a pass/fail test.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from bench.stats import moved, spread


def cells(report: dict) -> dict[tuple[str, int], dict[str, float]]:
    """Per (target, concurrency) of one bench-inference report: median and best tokens/s over the
    rounds, and the median front-end CPU ms per request."""
    by_cell: dict[tuple[str, int], list[dict]] = {}
    for r in report["results"]:
        by_cell.setdefault((r["target"], int(r["concurrency"])), []).append(r)
    out = {}
    for key, rs in sorted(by_cell.items()):
        _, median, best = spread([r["tokens_per_s"] for r in rs])
        out[key] = {"median": median, "best": best, "cpu": spread([r["server_cpu_ms_per_request"] for r in rs])[1]}
    return out


def compare(a: dict, b: dict, tolerance: float) -> tuple[list[str], dict[str, tuple[int, int]]]:
    """Table lines for the cells both reports hold, and per figure (cells within ``tolerance``, cells)."""
    ca, cb = cells(a), cells(b)
    common = [key for key in ca if key in cb]
    lines = ["| target | c | median tokens/s, run 1 · run 2 (moved) | best round (moved) | "
             "front-end CPU ms/request (moved) |", "|---|---:|---:|---:|---:|"]
    within = {"median": 0, "best": 0, "cpu": 0}
    for key in common:
        parts = []
        for figure, fmt in (("median", ",.0f"), ("best", ",.0f"), ("cpu", ".2f")):
            x, y = ca[key][figure], cb[key][figure]
            m = moved(x, y)
            within[figure] += m <= tolerance
            parts.append(f"{x:{fmt}} · {y:{fmt}} ({100 * m:.0f} %{'' if m <= tolerance else ' !'})")
        lines.append(f"| {key[0]} | {key[1]} | " + " | ".join(parts) + " |")
    return lines, {figure: (n, len(common)) for figure, n in within.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("first", type=Path)
    ap.add_argument("second", type=Path)
    ap.add_argument("--tolerance", type=float, default=0.15, help="a cell agrees when it moved by at most this")
    a = ap.parse_args()
    first, second = (json.loads(p.read_text()) for p in (a.first, a.second))
    lines, within = compare(first, second, a.tolerance)
    for label, report in (("run 1", first), ("run 2", second)):
        print(f"{label}: {report.get('date')}, {report.get('rounds')} rounds, load before "
              f"{', '.join(f'{x:.2f}' for x in report.get('load_before', []))}")
    print("\n".join(lines))
    print()
    for figure, (n, total) in within.items():
        print(f"{figure}: {n} of {total} cells within {100 * a.tolerance:.0f} %")


if __name__ == "__main__":
    main()
