"""The inference service's event path alone: CPU per event of emit → on-disk spool → Kafka, at fixed
request rates, for each shipper interval (``DRIFTLOOP_INFERENCE_SPOOL_SHIP_INTERVAL_MS``).

Every prediction the service answers costs it one event: encoded on the request path, appended to
the sqlite spool by a writer thread, shipped to a real Kafka broker (acks=all) by a shipper thread,
deleted once acknowledged. This benchmark runs exactly that (``EventEmitter`` with the service's
producer settings) in its own process against a local broker, emits PredictionEvents of the demo's
shape at a steady rate, waits until Kafka acknowledged every one, and reports the process's CPU
(all its threads) per event and how long the last event took to reach Kafka. The intervals run
interleaved (A B B A ...) so a change of the machine's speed between cells shows. Not pass/fail;
a unit test (tests/unit/bench) holds the arithmetic.

    .venvs/serving/bin/python -m bench.events [--rates 25,60,250] [--intervals 0,250] [--seconds 15]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from prometheus_client import CollectorRegistry

from bench.stats import load, refuse_if_busy
from driftloop.core.emitter import EventEmitter
from driftloop.core.metrics import EventMetrics
from driftloop.core.topics import PREDICTIONS
from driftloop.demo.traffic import prediction
from driftloop.inference.settings import InferenceSettings
from driftloop.local.kafka import LocalKafka, LocalKafkaSettings


@dataclass
class Cell:
    rate: float
    interval_ms: int
    repeat: int
    events: int
    acked: int
    cpu_s: float
    idle_cpu_s: float  # the same process over the same seconds with the emitter idle (its threads' polling)
    tail_s: float  # from the last emit to Kafka's acknowledgement of everything

    @property
    def ms_per_event(self) -> float:
        return 1000 * self.cpu_s / self.events if self.events else 0.0


def order(intervals: list[int], repeats: int) -> list[tuple[int, int]]:
    """(repeat, interval) in A B B A order: each repeat reverses the previous one's."""
    return [(r, iv) for r in range(repeats) for iv in (intervals if r % 2 == 0 else intervals[::-1])]


def medians(cells: list[Cell]) -> dict[tuple[float, int], float]:
    """The median ms of CPU per event over the repeats, per (rate, interval)."""
    by: dict[tuple[float, int], list[float]] = {}
    for c in cells:
        by.setdefault((c.rate, c.interval_ms), []).append(c.ms_per_event)
    return {k: statistics.median(v) for k, v in by.items()}


def run_cell(broker: LocalKafka, work: Path, rate: float, interval_ms: int, repeat: int, seconds: float,
             events: list) -> Cell:
    s = InferenceSettings(kafka=broker.kafka_settings(), admin_token="bench")
    metrics = EventMetrics(CollectorRegistry(), "inference")
    emitter = EventEmitter(s.kafka, work / f"spool-{rate}-{interval_ms}-{repeat}.sqlite", s.spool_max_bytes,
                           metrics, batch=s.spool_batch, ship_interval_s=interval_ms / 1000)
    emitter.start()
    acked = metrics.emitted.labels("inference", PREDICTIONS.name)

    def wait_acked(count: int, within: float, step: float) -> None:
        deadline = time.monotonic() + within
        while acked._value.get() < count and time.monotonic() < deadline:
            time.sleep(step)

    try:
        emitter.emit(PREDICTIONS, "warm-up", events[0])  # connect and fetch metadata outside the count
        wait_acked(1, within=30, step=0.05)
        c0 = time.process_time()
        time.sleep(2.0)
        idle = (time.process_time() - c0) * seconds / 2.0
        n = int(rate * seconds)
        c0, t0 = time.process_time(), time.perf_counter()
        for i in range(n):
            ahead = t0 + i / rate - time.perf_counter()
            if ahead > 0:
                time.sleep(ahead)
            e = events[i % len(events)]
            emitter.emit(PREDICTIONS, e.request_id, e)
        last = time.perf_counter()
        wait_acked(n + 1, within=60, step=0.002)
        tail, cpu = time.perf_counter() - last, time.process_time() - c0
        delivered = int(acked._value.get()) - 1
    finally:
        emitter.close(drain_timeout=5)
    return Cell(rate, interval_ms, repeat, n, delivered, cpu, idle, tail)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rates", default="25,60,250", help="events (requests) per second, comma-separated")
    ap.add_argument("--intervals", default=None,
                    help="shipper intervals in ms, comma-separated (default: 0 and the service's default)")
    ap.add_argument("--seconds", type=float, default=15.0, help="emitting time per cell")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--max-load", type=float, default=0.5, help="refuse above this 1-minute load per core")
    ap.add_argument("--force", action="store_true", help="run on a busy machine anyway (figures are marked)")
    ap.add_argument("--out", type=Path, default=Path("reports/bench-events.json"))
    a = ap.parse_args()
    default_ms = InferenceSettings.model_fields["spool_ship_interval_ms"].default
    intervals = [int(x) for x in a.intervals.split(",")] if a.intervals else sorted({0, default_ms})
    rates = [float(x) for x in a.rates.split(",")]
    too_busy = refuse_if_busy(a.max_load, a.force)
    load_before, started = load(), time.strftime("%Y-%m-%d %H:%M")
    work = Path(tempfile.mkdtemp(prefix="driftloop-bench-events-"))
    broker = LocalKafka(LocalKafkaSettings(port=0, controller_port=0, state_dir=work / "kafka"))
    broker.start()
    rng = random.Random(0)
    events = [prediction(rng, shifted=False, request_id=f"bench-{i}") for i in range(2000)]
    cells: list[Cell] = []
    try:
        for rate in rates:
            for repeat, iv in order(intervals, a.repeats):
                c = run_cell(broker, work, rate, iv, repeat, a.seconds, events)
                cells.append(c)
                print(f"rate {rate:g}/s interval {iv} ms repeat {repeat}: {c.events} events, {c.acked} acknowledged, "
                      f"{c.ms_per_event:.3f} ms CPU/event (idle threads {1000 * c.idle_cpu_s / c.events:.3f}), "
                      f"last event in Kafka {1000 * c.tail_s:.0f} ms after it was emitted", flush=True)
    finally:
        broker.stop()
    load_after = load()
    med = medians(cells)
    print(f"\n{started}, {os.cpu_count()} CPUs, {a.seconds:g} s per cell, {a.repeats} repeats; load average "
          f"(1, 5, 15 min) before {', '.join(f'{x:.2f}' for x in load_before)}, after "
          f"{', '.join(f'{x:.2f}' for x in load_after)}" + (f"; RAN BUSY: {too_busy}" if too_busy else ""))
    print("\nms of CPU per event, median of the repeats (ratio to the first interval)")
    print("| events/s | " + " | ".join(f"interval {iv} ms" for iv in intervals) + " |")
    print("|---:|" + "---:|" * len(intervals))
    for rate in rates:
        base = med[(rate, intervals[0])]
        print(f"| {rate:g} | " + " | ".join(
            f"{med[(rate, iv)]:.3f}" + ("" if iv == intervals[0] else f" ({med[(rate, iv)] / base:.2f})")
            for iv in intervals) + " |")
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps({"date": started, "cpus": os.cpu_count(), "load_before": load_before,
                                 "load_after": load_after, "busy": too_busy, "seconds": a.seconds,
                                 "cells": [asdict(c) | {"ms_per_event": c.ms_per_event} for c in cells]}, indent=2))
    print(f"written to {a.out}")


if __name__ == "__main__":
    main()
