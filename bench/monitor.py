"""Benchmark: how many events per second the monitor processes, and the lag while it does.

    make bench-monitor     (or: python -m bench.monitor [--events 6000])

Produces the events first (a backlog), then starts the real monitor process against a real
broker and samples its metrics every second until the backlog is gone: events/s end to end
(decode, embed, test, persist, commit) and consumer lag over time. Runs once per drift backend
(alibi-detect, scipy), and scipy once more with no slice streams (MAX_SLICES 0: what the
default lang= slice stream costs), and prints them side by side. Not a pass/fail test.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path

from driftloop.core.kafka import EventProducer
from driftloop.core.topics import PREDICTIONS
from driftloop.demo.traffic import prediction
from driftloop.local.kafka import LocalKafka, LocalKafkaSettings
from driftloop.local.procs import ServiceProcess


def scrape(url: str) -> dict[str, float]:
    import urllib.request

    out = {}
    for line in urllib.request.urlopen(url, timeout=5).read().decode().splitlines():
        if line and not line.startswith("#"):
            k, _, v = line.rpartition(" ")
            out[k] = float(v)
    return out


def total(samples: dict[str, float], name: str) -> float:
    return sum(v for k, v in samples.items() if k.split("{")[0] == name)


def run(broker: LocalKafka, work: Path, backend: str, n: int, slices: bool = True) -> dict:
    """One monitor process through the backlog; ``slices`` False: no slice streams (MAX_SLICES 0), to
    show what the default lang= slice stream costs."""
    name = backend + ("" if slices else "-noslices")
    env = {"DRIFTLOOP_KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap, "DRIFTLOOP_MONITOR_GROUP_ID": f"bench-{name}",
           "DRIFTLOOP_MONITOR_STATE_DIR": str(work / f"state-{name}"), "DRIFTLOOP_MONITOR_METRICS_PORT": "0",
           "DRIFTLOOP_MONITOR_BACKEND": backend, "DRIFTLOOP_MONITOR_LAG_INTERVAL_S": "1",
           **({} if slices else {"DRIFTLOOP_MONITOR_MAX_SLICES": "0"})}
    proc = ServiceProcess(f"monitor-{name}", "driftloop.monitor", env, work / f"monitor-{name}.log")
    url = f"http://{proc.wait_ready(180)['metrics']}/metrics"
    t0 = time.perf_counter()
    lag_series = []
    try:
        while True:
            s = scrape(url)
            done = total(s, "driftloop_monitor_predictions_total")
            lag_series.append((round(time.perf_counter() - t0, 1), int(total(s, "driftloop_monitor_consumer_lag")),
                               int(done)))
            if done >= n:
                break
            time.sleep(1.0)
        wall = time.perf_counter() - t0
        embed_s = total(s, "driftloop_monitor_detector_duration_seconds_sum")
    finally:
        proc.stop()
    return {"backend": backend, "slices": slices, "events": n, "wall_s": wall, "events_per_s": n / wall,
            "detector_and_embedding_s": embed_s, "lag": lag_series}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=6000)
    ap.add_argument("--out", type=Path, default=Path("reports/bench-monitor.json"))
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="driftloop-bench-monitor-"))
    broker = LocalKafka(LocalKafkaSettings(port=0, controller_port=0, state_dir=work / "kafka"))
    broker.start()
    try:
        producer = EventProducer(broker.kafka_settings())
        rng = random.Random(0)
        for i in range(a.events):
            ev = prediction(rng, shifted=i >= a.events * 2 // 3)
            producer.send(PREDICTIONS, ev.request_id, ev)
        producer.flush(120)
        producer.close()
        results = [run(broker, work, "alibi", a.events), run(broker, work, "scipy", a.events),
                   run(broker, work, "scipy", a.events, slices=False)]
    finally:
        broker.stop()
    print("| backend | slice streams | events | wall s | events/s | max lag | lag at end |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for r in results:
        lags = [x[1] for x in r["lag"]]
        print(f"| {r['backend']} | {'default' if r['slices'] else 'off'} | {r['events']} | {r['wall_s']:.1f} | "
              f"{r['events_per_s']:.0f} | {max(lags)} | {lags[-1]} |")
    print(f"\nscipy/alibi events/s = {results[1]['events_per_s'] / results[0]['events_per_s']:.2f}; "
          f"slices default/off (scipy) = {results[1]['events_per_s'] / results[2]['events_per_s']:.2f}")
    for r in results:
        print(f"lag over time ({r['backend']}; s, lag, processed): {r['lag'][:: max(1, len(r['lag']) // 8)]}")
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(results, indent=2))
    print(f"written to {a.out}")


if __name__ == "__main__":
    main()
