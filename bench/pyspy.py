"""Where a monitor process spends its time, from py-spy's raw (collapsed) stacks.

``py-spy record -p PID -f raw -t`` writes one line per distinct stack, ``frame;frame;... count``
(outermost first, the thread as the first frame with ``-t``). :func:`where_the_time_goes` puts each
sample of the consumer loop's thread in the first category whose marker appears in its stack and
gives the shares; other threads (Kafka's heartbeat, the metrics server) are counted apart.
"""

from __future__ import annotations

import shutil
import subprocess
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

# (category, markers): a sample goes to the first category with a marker in any of its frames. The
# order matters: a drift test runs inside the streams' code, the embedding inside the flush.
CATEGORIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("embedding (MiniLM)", ("monitor/embedding.py", "sentence_transformers")),
    ("drift test: MMD", ("mmd (driftloop/monitor/backends.py", "prepare_mmd (driftloop", "_mmd_reference (")),
    ("drift tests: KS, chi2", ("detectors.py", "monitor/backends.py", "alibi_detect", "scipy/")),
    ("checkpoint: state + offsets (sqlite), triggers", ("monitor/checkpoint.py", "monitor/snapshots.py")),
    ("handle: join and dedupe (sqlite)", ("monitor/join.py", "remember_prediction (", "monitor/state.py")),
    ("handle: validation", ("monitor/validation.py",)),
    ("handle: features", ("monitor/features.py",)),
    ("metrics (prometheus_client)", ("prometheus_client",)),
    ("decode (protobuf)", ("core/codec.py",)),
    ("Kafka client (fetch, records, commit)", ("kafka/",)),
    ("streams, policy, exporter", ("monitor/streams.py", "monitor/policy.py", "monitor/exporter.py")),
)
LOOP_MARKER = "run (driftloop/monitor/service.py"


def parse(lines: Iterable[str]) -> list[tuple[list[str], int]]:
    """(frames, samples) per line of py-spy's raw output."""
    out = []
    for line in lines:
        line = line.rstrip("\n")
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            out.append((stack.split(";"), int(count)))
    return out


def category(frames: list[str]) -> str:
    for name, markers in CATEGORIES:
        if any(m in f for f in frames for m in markers):
            return name
    return "other (consumer loop)"


def where_the_time_goes(stacks: list[tuple[list[str], int]]) -> dict[str, float]:
    """Share of all samples per category of the consumer loop's thread, plus "other threads"."""
    counts: Counter[str] = Counter()
    for frames, n in stacks:
        counts[category(frames) if any(LOOP_MARKER in f for f in frames) else "other threads"] += n
    total = sum(counts.values())
    return {k: v / total for k, v in counts.most_common()} if total else {}


def record(pid: int, seconds: int, out: Path, gil: bool = False, py_spy: str | None = None) -> Path | None:
    """Sample a running process with py-spy (None when py-spy is not installed)."""
    exe = py_spy or shutil.which("py-spy") or str(Path(__file__).resolve().parents[1] / ".tools" / "bin" / "py-spy")
    if not Path(exe).exists():
        return None
    cmd = [exe, "record", "-p", str(pid), "-d", str(seconds), "-r", "100", "-f", "raw", "--nonblocking", "-t",
           "-o", str(out), *(["--gil"] if gil else [])]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return out
