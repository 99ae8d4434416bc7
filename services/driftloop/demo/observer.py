"""Watches the loop through one channel: the services' Prometheus metrics.

The metrics are the product's own contract with whoever runs it (the dashboards, the alert rules and
tests/deploy's name checks are built on them), they cover every step of the loop (the monitor's
trigger, each retrainer stage, the gate, the run's outcome) and the report plots them anyway. The
Kafka topics carry only the trigger and the desired adapter state (no stage, no rejection), and the
registry's files are the retrainer's private store: the demo reads the records it reports from
those once, after the loop (driftloop.demo.outcome), and never polls them.
"""

from __future__ import annotations

import threading
import urllib.request
from collections.abc import Callable

from prometheus_client.parser import text_string_to_metric_families

from driftloop.demo.timeline import Timeline

KEEP = ("driftloop_monitor_drift_statistic", "driftloop_monitor_drift_statistic_threshold",
        "driftloop_monitor_drift_detected", "driftloop_monitor_rate", "driftloop_monitor_rate_threshold",
        "driftloop_monitor_retrain_triggers", "driftloop_monitor_episode_active", "driftloop_monitor_consumer_lag",
        "driftloop_inference_requests", "driftloop_inference_canary_weight", "driftloop_retrainer_run_in_progress",
        "driftloop_retrainer_runs_total", "driftloop_retrainer_stage_duration_seconds_sum",
        "driftloop_retrainer_stage_duration_seconds_count",
        "driftloop_retrainer_gate_score", "driftloop_retrainer_after_rejection_total",
        "driftloop_monitor_follow_up_rounds_total")
"""Series kept in the timeline (name prefixes)."""
STAGES = ("dataset", "training", "gate")
FINAL = ("promoted", "rolled_back")
"""Run outcomes that end the demo's wait; after a failed run it keeps waiting (the loop may try again),
and after a rejection too while the retrainer's next attempt is pending (retrainer/episodes.py)."""
EPISODE_ENDED = ("gave_up", "no_new_evidence")


def parse_samples(text: str, t: float, service: str, keep: tuple[str, ...] = KEEP) -> list[dict]:
    """The kept samples of one scrape (Prometheus text format) as timeline rows."""
    return [{"t": t, "service": service, "name": s.name, "labels": s.labels, "value": s.value}
            for fam in text_string_to_metric_families(text) for s in fam.samples if s.name.startswith(keep)]


def http_get(url: str) -> str:
    return urllib.request.urlopen(url, timeout=5).read().decode()


class Observer:
    """Scrapes ``targets`` ({service: metrics URL}) into the timeline and reads the loop's progress
    from what it scraped. ``fetch`` is the HTTP GET (a fake in unit tests)."""

    def __init__(self, timeline: Timeline, targets: dict[str, str], alias: str,
                 fetch: Callable[[str], str] = http_get) -> None:
        self.timeline = timeline
        self.targets = targets
        self.alias = alias
        self.fetch = fetch
        self._seen: set[str] = set()

    # -- the channel -------------------------------------------------------------------------------
    def scrape(self) -> None:
        now = self.timeline.since_start()
        for service, url in self.targets.items():
            try:
                text = self.fetch(url)
            except OSError:
                continue
            self.timeline.add_samples(parse_samples(text, now, service))

    def run(self, stop: threading.Event, every_s: float = 2.0) -> None:
        while not stop.wait(every_s):
            self.scrape()

    def start(self, stop: threading.Event, every_s: float = 2.0) -> threading.Thread:
        thread = threading.Thread(target=self.run, args=(stop, every_s), name="observer", daemon=True)
        thread.start()
        return thread

    # -- what it says ------------------------------------------------------------------------------
    def _latest(self, name: str, **labels: str) -> float:
        return self.timeline.latest(name, **labels)

    def progress(self) -> None:
        """Put each step the metrics show for the first time on the timeline: the trigger, the run,
        each retrainer stage."""
        if self._latest("driftloop_monitor_retrain_triggers_total"):
            self._once("trigger", "monitor raised a RetrainTrigger")
        if self._latest("driftloop_retrainer_run_in_progress"):
            self._once("run", "retrainer: run started", "collecting corrections and confirmed answers")
        for stage in STAGES:
            took = self._latest("driftloop_retrainer_stage_duration_seconds_sum", stage=stage)
            if took:
                self._once(f"stage:{stage}", f"retrainer: {stage} done", f"{took:.0f} s")
        retries = int(self._latest("driftloop_retrainer_after_rejection_total", adapter_alias=self.alias,
                                   result="retry"))
        for n in range(1, retries + 1):
            self._once(f"retry:{n}", "retrainer: gate rejected, next attempt raised",
                       f"attempt {n + 1} waits for new corrections")

    def _once(self, key: str, name: str, detail: str = "") -> None:
        if key not in self._seen:
            self._seen.add(key)
            self.timeline.event(name, detail)

    def outcome(self) -> str | None:
        """The first final outcome for the alias: promoted or rolled back, or rejected once the episode
        has no attempt left (the retrainer counts that before it counts the run)."""
        for result in FINAL:
            if self._latest("driftloop_retrainer_runs_total", adapter_alias=self.alias, outcome=result):
                return result
        ended = any(self._latest("driftloop_retrainer_after_rejection_total", adapter_alias=self.alias, result=r)
                    for r in EPISODE_ENDED)
        if ended and self._latest("driftloop_retrainer_runs_total", adapter_alias=self.alias, outcome="rejected"):
            return "rejected"
        return None

    def promotions(self) -> int:
        """Versions of the alias promoted so far."""
        return int(self._latest("driftloop_retrainer_runs_total", adapter_alias=self.alias, outcome="promoted"))

    def episode_end(self) -> str | None:
        """After a promotion, the monitor's verdict on the episode: ``recovered`` (back to its pre-change
        negative-feedback rate) or ``exhausted`` (no round left), None while it is still followed up."""
        for result in ("recovered", "exhausted"):
            if self._latest("driftloop_monitor_follow_up_rounds_total", adapter_alias=self.alias, result=result):
                return result
        return None

    def training(self) -> bool:
        """True from the end of a run's dataset stage to the end of its gate: the adapter trains and is
        gated (counted per run: a round's run comes after the first one's gate)."""
        stage = "driftloop_retrainer_stage_duration_seconds_count"
        return bool(self._latest("driftloop_retrainer_run_in_progress")
                    and self._latest(stage, stage="dataset") > self._latest(stage, stage="gate"))
