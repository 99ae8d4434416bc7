"""Benchmark: how many events per second the monitor processes, where its time goes, and whether
its embedding sample raises false alarms.

    make bench-monitor     (or: python -m bench.monitor [--events 20000] [--backends alibi,scipy]
                            [--repeats 1] [--set EMBED_MAX_PER_WINDOW=100 ...] [--profile 20])
    python -m bench.monitor --false-alarms [--streams 4] [--windows 40] [--distinct]

Throughput: a backlog of ``--events`` prediction events (``driftloop.demo.traffic``, the last third
shifted) is produced to a fresh broker; then, per run, the real monitor process (its own consumer
group and state, the monitor's defaults plus ``--set``) works through it while its metrics are
scraped every second. Runs take turns by backend (alibi, scipy, alibi, ...). Per run: events/s from
the READY line to the last event (what a restarted monitor takes to catch up) and in steady state
(between the first and the last second with progress), the consumer lag over time, the monitor's
CPU seconds per 1,000 events, where the time goes (the monitor's own
``driftloop_monitor_stage_seconds_total`` and detector durations), and what the drift tests said
(windows tested and drifted, triggers: the shift must still be caught). ``--profile S`` adds one
run per backend sampled by py-spy for S seconds (not timed), its stacks put in categories
(``bench/pyspy.py``).

False alarms (``--false-alarms``): ``--streams`` streams (models) of in-distribution events only,
a reference and ``--windows`` windows each, through the real monitor with its defaults (the
embedding sample on) and again with the load shedder forced on (``SHED_LAG=1``); counts the MMD
windows tested, those that drifted (expected about P_VALUE of them) and the triggers (expected 0).
``--distinct`` makes every prompt unique in either mode (a random ticket number appended).

Refuses to start on a busy machine (``--max-load``, per core) and prints the load average before
and after. Results in ``reports/bench-monitor.json``. Not a pass/fail test.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bench import pyspy
from bench.load import process_cpu_seconds
from bench.stats import load, refuse_if_busy
from driftloop.core.kafka import EventProducer
from driftloop.core.topics import PREDICTIONS
from driftloop.demo.traffic import prediction
from driftloop.local.kafka import LocalKafka, LocalKafkaSettings
from driftloop.local.procs import ServiceProcess
from driftloop.monitor.settings import MonitorSettings

STAGES = ("kafka", "handle", "embedding", "streams", "checkpoint", "other")
TESTS = ("input_embedding", "prompt_length", "response_length", "mean_logprob", "finish_reason", "empty_or_refusal")


def scrape(url: str) -> dict[str, float]:
    out = {}
    for line in urllib.request.urlopen(url, timeout=5).read().decode().splitlines():
        if line and not line.startswith("#"):
            k, _, v = line.rpartition(" ")
            out[k] = float(v)
    return out


def total(samples: dict[str, float], name: str, **labels: str) -> float:
    """Sum of a metric's samples whose labels include ``labels``."""
    want = [f'{k}="{v}"' for k, v in labels.items()]
    return sum(v for k, v in samples.items() if k.split("{")[0] == name and all(w in k for w in want))


# -- arithmetic (tests/unit/bench/test_monitor_bench.py) -----------------------------------------------
def steady_rate(series: Sequence[tuple[float, int, int]]) -> float:
    """Events/s between the first and the last sample with progress, from (s, lag, processed)."""
    moving = [(t, done) for i, (t, _, done) in enumerate(series)
              if done > (series[i - 1][2] if i else 0) or (i + 1 < len(series) and series[i + 1][2] > done)]
    if len(moving) < 2 or moving[-1][0] <= moving[0][0]:
        return float("nan")
    return (moving[-1][1] - moving[0][1]) / (moving[-1][0] - moving[0][0])


def shares(stage_s: dict[str, float], wall_s: float) -> dict[str, float]:
    """Each stage's share of the wall time, and what no stage accounts for (waiting, start-up)."""
    out = {k: v / wall_s for k, v in stage_s.items()}
    out["unaccounted"] = max(0.0, 1 - sum(out.values()))
    return out


@dataclass
class Run:
    backend: str
    events: int
    wall_s: float
    events_per_s: float
    steady_events_per_s: float
    cpu_s_per_1000: float
    lag: list[tuple[float, int, int]]
    stage_s: dict[str, float]
    detector_s: dict[str, float]
    mmd_windows: int
    mmd_drifted: int
    triggers: int
    load_before: tuple[float, float, float]
    settings: dict[str, str] = field(default_factory=dict)


def monitor_env(broker: LocalKafka, work: Path, name: str, backend: str, extra: dict[str, str]) -> dict[str, str]:
    return {"DRIFTLOOP_KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap, "DRIFTLOOP_MONITOR_GROUP_ID": name,
            "DRIFTLOOP_MONITOR_STATE_DIR": str(work / f"state-{name}"), "DRIFTLOOP_MONITOR_METRICS_PORT": "0",
            "DRIFTLOOP_MONITOR_BACKEND": backend, "DRIFTLOOP_MONITOR_LAG_INTERVAL_S": "1",
            **{f"DRIFTLOOP_MONITOR_{k.upper()}": v for k, v in extra.items()}}


def run(broker: LocalKafka, work: Path, name: str, backend: str, n: int, extra: dict[str, str],
        profile_s: int = 0) -> Run | dict[str, float]:
    """One monitor process through the backlog; with ``profile_s``, py-spy's categories instead."""
    load_before = load()
    proc = ServiceProcess(name, "driftloop.monitor", monitor_env(broker, work, name, backend, extra),
                          work / f"{name}.log")
    url = f"http://{proc.wait_ready(180)['metrics']}/metrics"
    t0, cpu0 = time.perf_counter(), process_cpu_seconds(proc.proc.pid)
    try:
        if profile_s:
            out = pyspy.record(proc.proc.pid, profile_s, work / f"{name}.pyspy.txt")
            return pyspy.where_the_time_goes(pyspy.parse(out.read_text().splitlines())) if out else {}
        series: list[tuple[float, int, int]] = []
        while True:
            s = scrape(url)
            done = int(total(s, "driftloop_monitor_predictions_total"))
            series.append((round(time.perf_counter() - t0, 1), int(total(s, "driftloop_monitor_consumer_lag")), done))
            if done >= n:
                break
            time.sleep(1.0)
        wall, cpu = time.perf_counter() - t0, process_cpu_seconds(proc.proc.pid) - cpu0
    finally:
        proc.stop()
    stage_s = {k: total(s, "driftloop_monitor_stage_seconds_total", stage=k) for k in STAGES}
    detector_s = {k: total(s, "driftloop_monitor_detector_duration_seconds_sum", detector=k)
                  for k in ("embedding", *TESTS)}
    tests = "driftloop_monitor_drift_tests_total"
    return Run(backend, n, wall, n / wall, steady_rate(series), 1000 * cpu / n, series, stage_s, detector_s,
               int(total(s, tests, detector="input_embedding")),
               int(total(s, tests, detector="input_embedding", result="drift")),
               int(total(s, "driftloop_monitor_retrain_triggers_total")), load_before, extra)


def produce(broker: LocalKafka, n: int, shifted_from: int, models: Sequence[str] = ("transit-base",),
            seed: int = 0, distinct: bool = False) -> int:
    """The backlog; returns how many distinct prompts it has. ``distinct``: each prompt made unique
    (a ticket number appended), so none is asked twice -- the embedding cache's worst case. The
    tickets are distinct 6-digit numbers drawn at random, the same distribution all along: a
    counter (3 digits in the reference, 5 later) was itself a drift the MMD test caught."""
    producer = EventProducer(broker.kafka_settings())
    rng = random.Random(seed)
    tickets = random.Random(seed + 1).sample(range(100_000, 1_000_000), n) if distinct else []
    prompts = set()
    for i in range(n):
        model = models[i % len(models)]
        ev = prediction(rng, shifted=i >= shifted_from, model=model, request_id=f"{model}-{i}")
        if distinct:
            ev.prompt = f"{ev.prompt} (ticket {tickets[i]})"
        prompts.add(ev.prompt)
        producer.send(PREDICTIONS, ev.request_id, ev)
    producer.flush(300)
    producer.close()
    return len(prompts)


def throughput(a: argparse.Namespace, broker: LocalKafka, work: Path, extra: dict[str, str]) -> dict:
    distinct = produce(broker, a.events, a.events * 2 // 3, distinct=a.distinct)
    print(f"backlog: {a.events} predictions, {distinct} distinct prompts"
          + (" (--distinct: every prompt unique)" if a.distinct else " (repeats: the embedding cache's share)"))
    backends = [b for b in a.backends.split(",") if b]
    runs = [run(broker, work, f"bench-{b}-{r}", b, a.events, extra)
            for r in range(a.repeats) for b in backends]
    profiles = {b: run(broker, work, f"profile-{b}", b, a.events, extra, profile_s=a.profile)
                for b in backends} if a.profile else {}
    print(table(runs))
    for r in runs:
        print(f"\nwhere the time goes ({r.backend}, share of {r.wall_s:.1f} s wall; the monitor's own stage "
              f"timers): " + ", ".join(f"{k} {v:.0%}" for k, v in shares(r.stage_s, r.wall_s).items()))
        print("  detector run time, s: " + ", ".join(f"{k} {v:.2f}" for k, v in r.detector_s.items()))
        print(f"  lag over time (s, lag, processed): {r.lag[:: max(1, len(r.lag) // 10)] + r.lag[-1:]}")
    for b, cats in profiles.items():
        print(f"\npy-spy, {b}, {a.profile} s of the consumer loop under the backlog: "
              + ", ".join(f"{k} {v:.0%}" for k, v in cats.items()))
    return {"runs": [asdict(r) for r in runs], "profiles": profiles, "distinct_prompts": distinct}


def table(runs: Sequence[Run]) -> str:
    lines = ["| backend | events | wall s | events/s | steady events/s | CPU s per 1,000 | max lag | MMD windows "
             "(drifted) | triggers | load before |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in runs:
        lines.append(f"| {r.backend} | {r.events} | {r.wall_s:.1f} | {r.events_per_s:.0f} | "
                     f"{r.steady_events_per_s:.0f} | {r.cpu_s_per_1000:.2f} | {max(x[1] for x in r.lag)} | "
                     f"{r.mmd_windows} ({r.mmd_drifted}) | {r.triggers} | {r.load_before[0]:.2f} |")
    return "\n".join(lines)


def false_alarms(a: argparse.Namespace, broker: LocalKafka, work: Path, extra: dict[str, str]) -> dict:
    s = MonitorSettings(**{k.lower(): v for k, v in extra.items()})
    models = [f"fa-{i}" for i in range(a.streams)]
    n = a.streams * (s.reference_size + a.windows * s.window_size)
    produce(broker, n, n, models, seed=1, distinct=a.distinct)  # nothing shifted
    out = {}
    for label, more in (("defaults", {}), ("load shedder on (SHED_LAG=1)", {"SHED_LAG": "1"})):
        r = run(broker, work, f"fa-{len(out)}", a.backends.split(",")[0], n, {**extra, **more})
        out[label] = asdict(r)
        print(f"{label}: {r.mmd_windows} MMD windows tested over {a.streams} in-distribution streams, "
              f"{r.mmd_drifted} drifted (p < {s.p_value}), {r.triggers} triggers; {r.events_per_s:.0f} events/s")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=20000)
    ap.add_argument("--backends", default="alibi,scipy")
    ap.add_argument("--repeats", type=int, default=1, help="runs per backend, taking turns")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="a monitor setting for every run (DRIFTLOOP_MONITOR_ without the prefix)")
    ap.add_argument("--profile", type=int, default=0, metavar="S", help="one more run per backend under py-spy")
    ap.add_argument("--distinct", action="store_true", help="every prompt unique (no embedding cache hits)")
    ap.add_argument("--false-alarms", action="store_true", help="in-distribution streams only: count alarms")
    ap.add_argument("--streams", type=int, default=4)
    ap.add_argument("--windows", type=int, default=40, help="windows per stream after its reference")
    ap.add_argument("--max-load", type=float, default=0.5, help="refuse above this 1-minute load per core")
    ap.add_argument("--force", action="store_true", help="run on a busy machine anyway (figures are marked)")
    ap.add_argument("--out", type=Path, default=Path("reports/bench-monitor.json"))
    a = ap.parse_args()
    extra = dict(kv.split("=", 1) for kv in a.set)
    too_busy = refuse_if_busy(a.max_load, a.force)
    load_before, started = load(), time.strftime("%Y-%m-%d %H:%M")
    work = Path(tempfile.mkdtemp(prefix="driftloop-bench-monitor-"))
    broker = LocalKafka(LocalKafkaSettings(port=0, controller_port=0, state_dir=work / "kafka"))
    broker.start()
    try:
        result = (false_alarms if a.false_alarms else throughput)(a, broker, work, extra)
    finally:
        broker.stop()
    load_after = load()
    print(f"\n{started}, {os.cpu_count()} CPUs; settings: the monitor's defaults"
          + (f" + {', '.join(a.set)}" if a.set else "")
          + f"\nload average (1, 5, 15 min): before {', '.join(f'{x:.2f}' for x in load_before)}; after "
          f"{', '.join(f'{x:.2f}' for x in load_after)} (the broker and the monitor count in the after)"
          + (f"; RAN BUSY: {too_busy}" if too_busy else ""))
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps({"date": started, "cpus": os.cpu_count(), "settings": a.set,
                                 "load_before": load_before, "load_after": load_after, "busy": too_busy,
                                 **result}, indent=2))
    print(f"written to {a.out}")


if __name__ == "__main__":
    main()
