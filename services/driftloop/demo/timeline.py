"""What happened when: the demo's own events and samples of the services' metrics, as they go into
``timeline.json`` (read by driftloop.demo.report)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable


class Timeline:
    def __init__(self, t0: float, clock: Callable[[], float] = time.time, echo: bool = True) -> None:
        self.t0 = t0
        self.clock = clock
        self.echo = echo
        self.events: list[dict] = []
        self.samples: list[dict] = []
        self.lock = threading.Lock()

    def event(self, name: str, detail: str = "", t: float | None = None) -> None:
        """Record an event at ``t`` (epoch seconds; default now) and print it."""
        t = self.clock() if t is None else t
        with self.lock:
            self.events.append({"t": round(t - self.t0, 2), "event": name, "detail": detail})
        if self.echo:
            print(f"[{t - self.t0:7.1f}s] {name}{': ' + detail if detail else ''}", flush=True)

    def since_start(self) -> float:
        return round(self.clock() - self.t0, 2)

    def add_samples(self, rows: Iterable[dict]) -> None:
        with self.lock:
            self.samples.extend(rows)

    def latest(self, name: str, **labels: str) -> float:
        """Sum over matching series at the newest scrape that has any (0 when none)."""
        with self.lock:
            rows = [r for r in reversed(self.samples[-3000:]) if r["name"] == name
                    and all(r["labels"].get(k) == v for k, v in labels.items())]
        return sum(r["value"] for r in rows if r["t"] == rows[0]["t"]) if rows else 0.0

    def sorted_events(self) -> list[dict]:
        with self.lock:
            return sorted(self.events, key=lambda e: e["t"])
