"""Where a process spends its time, from py-spy's raw (collapsed) stacks.

``py-spy record -p PID -f raw -t`` writes one line per distinct stack, ``frame;frame;... count``
(outermost first, the thread as the first frame with ``-t``). :func:`where_the_time_goes` puts each
sample of the monitor's consumer loop thread in the first category whose marker appears in its
stack and gives the shares; other threads (Kafka's heartbeat, the metrics server) are counted
apart. :func:`samples_by_category` does the same for every thread of a vLLM process with
:data:`VLLM_CATEGORIES` (bench/logprobs.py's ``--profile``).

py-spy is not a dependency of the project: ``make py-spy`` installs it into ``.tools/``.
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


# vLLM on CPU runs three processes: the client (``AsyncLLM``, in the server's or the benchmark's
# process), the engine core (scheduler) and one worker (model and sampler); the core and the worker
# hand each step to each other through shared memory and spin (``sched_yield``) while they wait.
# The logprobs' own work comes first: it runs inside the sampler and the client's output handler.
VLLM_CATEGORIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("logprobs: sampler (top-k, gather, rank)",
     ("compute_logprobs (vllm/", "gather_logprobs (vllm/", "vllm/v1/sample/ops/logprobs.py")),
    ("logprobs: client (LogprobsProcessor)", ("vllm/v1/engine/logprobs.py", "(vllm/logprobs.py")),
    ("model forward, logits", ("_model_forward (vllm/", "compute_logits (vllm/")),
    ("sampler: sampling", ("vllm/v1/sample/",)),
    ("worker: inputs, bookkeeping", ("vllm/v1/worker/",)),
    ("core ↔ worker: waiting (spin)", ("MessageQueue.acquire_read (", "MessageQueue.dequeue (")),
    ("hand-off: shared memory, zmq, msgpack", ("MessageQueue.enqueue (", "vllm/v1/serial_utils.py", "zmq/",
                                              "process_output_sockets (vllm/", "process_input_sockets (vllm/",
                                              "handle_output (vllm/")),
    ("scheduler", ("vllm/v1/core/",)),
    ("client: output handler", ("vllm/v1/engine/output_processor.py", "vllm/v1/engine/async_llm.py")),
    ("client: tokenizer, input processing", ("vllm/tokenizers/", "transformers/", "vllm/v1/engine/input_processor.py")),
    # last: every client stack runs under the event loop; what is left is the loop itself (waiting
    # in select included: py-spy does not always see it as idle), idle pool threads, the load
    ("event loop, thread pools, load generator", ("asyncio/", "selectors.py", "concurrent/futures/", "bench/")),
)


def category(frames: list[str], categories: tuple[tuple[str, tuple[str, ...]], ...] = CATEGORIES,
             default: str = "other (consumer loop)") -> str:
    for name, markers in categories:
        if any(m in f for f in frames for m in markers):
            return name
    return default


def samples_by_category(stacks: list[tuple[list[str], int]],
                        categories: tuple[tuple[str, tuple[str, ...]], ...] = VLLM_CATEGORIES) -> Counter[str]:
    """Samples per category over every thread (a sample is one thread seen running at one tick)."""
    counts: Counter[str] = Counter()
    for frames, n in stacks:
        counts[category(frames, categories, "other")] += n
    return counts


def where_the_time_goes(stacks: list[tuple[list[str], int]]) -> dict[str, float]:
    """Share of all samples per category of the consumer loop's thread, plus "other threads"."""
    counts: Counter[str] = Counter()
    for frames, n in stacks:
        counts[category(frames) if any(LOOP_MARKER in f for f in frames) else "other threads"] += n
    total = sum(counts.values())
    return {k: v / total for k, v in counts.most_common()} if total else {}


RATE = 100  # samples per second and thread


def executable() -> str | None:
    exe = shutil.which("py-spy") or str(Path(__file__).resolve().parents[1] / ".tools" / "bin" / "py-spy")
    return exe if Path(exe).exists() else None


def start(pid: int, seconds: int, out: Path, gil: bool = False, rate: int = RATE) -> subprocess.Popen | None:
    """Start sampling a running process for ``seconds`` (None when py-spy is not installed)."""
    exe = executable()
    if exe is None:
        return None
    cmd = [exe, "record", "-p", str(pid), "-d", str(seconds), "-r", str(rate), "-f", "raw", "--nonblocking", "-t",
           "-o", str(out), *(["--gil"] if gil else [])]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def record(pid: int, seconds: int, out: Path, gil: bool = False) -> Path | None:
    """Sample a running process with py-spy (None when py-spy is not installed)."""
    proc = start(pid, seconds, out, gil)
    if proc is None:
        return None
    if proc.wait():
        raise subprocess.CalledProcessError(proc.returncode, proc.args)
    return out
