"""The retrainer's trigger consumer: idempotent by trigger id and dedupe key (an outcome record per
trigger, in sqlite), offsets committed only after the outcome is durable, and the long run on a
worker thread while the consumer keeps polling with its partitions paused (so the group never
rebalances mid-training)."""

from __future__ import annotations

import json
import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import grpc
from kafka.structs import TopicPartition
from prometheus_client import CollectorRegistry

from driftloop.core import codec, ids
from driftloop.core.kafka import DeadLetterSink, EventConsumer, EventProducer
from driftloop.core.metrics import RetrainerMetrics
from driftloop.core.sqlite import open_db
from driftloop.core.topics import RETRAIN_TRIGGERS
from driftloop.retrainer.canary import CanaryObserver
from driftloop.retrainer.pipeline import InferenceClient, Pipeline, RunOutcome, TriggerRefused
from driftloop.retrainer.settings import RetrainerSettings
from driftloop.v1 import events_pb2

log = logging.getLogger(__name__)


class Outcomes:
    """What happened to each trigger. ``started`` without ``finished`` means a run was interrupted."""

    def __init__(self, path: Path) -> None:
        self.db = open_db(path, "FULL", threads=True)
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS outcomes (trigger_id TEXT PRIMARY KEY, dedupe_key TEXT, alias TEXT,"
            " version TEXT, result TEXT, detail TEXT, attempts INTEGER, started REAL, finished REAL)"
        )

    def finished(self, trigger_id: str, dedupe_key: str) -> tuple | None:
        return self.db.execute(
            "SELECT trigger_id, result FROM outcomes WHERE finished IS NOT NULL AND (trigger_id = ? OR dedupe_key = ?)",
            (trigger_id, dedupe_key)).fetchone()

    def start(self, t: events_pb2.RetrainTrigger) -> int:
        self.db.execute(
            "INSERT INTO outcomes (trigger_id, dedupe_key, alias, attempts, started) VALUES (?, ?, ?, 1, ?) "
            "ON CONFLICT(trigger_id) DO UPDATE SET attempts = attempts + 1, started = excluded.started",
            (t.trigger_id, t.dedupe_key, t.adapter_alias, time.time()))
        return self.db.execute("SELECT attempts FROM outcomes WHERE trigger_id = ?", (t.trigger_id,)).fetchone()[0]

    def skip(self, t: events_pb2.RetrainTrigger, reason: str) -> None:
        """A trigger refused before any work (stale, unknown alias): an outcome with no version."""
        now = time.time()
        self.db.execute(
            "INSERT INTO outcomes (trigger_id, dedupe_key, alias, version, result, detail, attempts, started, finished)"
            " VALUES (?, ?, ?, '', 'skipped', ?, 0, ?, ?) ON CONFLICT(trigger_id) DO NOTHING",
            (t.trigger_id, t.dedupe_key, t.adapter_alias, reason, now, now))

    def finish(self, o: RunOutcome) -> None:
        self.db.execute("UPDATE outcomes SET version = ?, result = ?, detail = ?, finished = ? WHERE trigger_id = ?",
                        (o.version, o.result, o.detail, time.time(), o.trigger_id))

    def all(self) -> list[dict]:
        cur = self.db.execute("SELECT * FROM outcomes ORDER BY started")
        cols = [c[0] for c in cur.description]
        return [dict(zip(cols, row, strict=True)) for row in cur.fetchall()]


class Retrainer:
    def __init__(self, settings: RetrainerSettings, registry: CollectorRegistry | None = None) -> None:
        self.s = settings
        self.registry = registry or CollectorRegistry()
        self.metrics = RetrainerMetrics(self.registry)
        self.producer = EventProducer(settings.kafka, "retrainer")
        token = settings.inference_admin_token.get_secret_value() if settings.inference_admin_token else None
        self.client = InferenceClient(settings.inference_address, token, settings.prompt_template,
                                      settings.gate_concurrency, settings.inference_tls, settings.inference_ca_file,
                                      settings.inference_server_name, settings.inference_admin_address)
        observer = CanaryObserver(settings.kafka, settings.canary_min_requests, settings.canary_max_wait_s,
                                  settings.canary_max_negative_increase)
        self.pipeline = Pipeline(settings, self.metrics, self.producer, self.client, observer)
        self.outcomes = Outcomes(settings.state_dir / "outcomes.sqlite")
        self.dead_letters = DeadLetterSink(self.producer, settings.group_id)
        self.consumer = EventConsumer(settings.kafka, [RETRAIN_TRIGGERS], settings.group_id,
                                      events_pb2.RetrainTrigger, max_poll_records=1,
                                      max_poll_interval_ms=300_000)
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="retrain-run")

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            for record in self.consumer.poll(timeout_ms=1000, max_records=1):
                try:
                    self._handle(record, stop)
                except Exception as exc:  # a record no rule foresaw: dead-letter it, never a crash loop
                    log.exception("trigger handler failed at %s[%d]@%d", record.topic, record.partition,
                                  record.offset)
                    self.dead_letters(record, "handler_error", f"{type(exc).__name__}: {exc}"[:2000])
                    self.metrics.triggers.labels("invalid").inc()
                    self.consumer.commit({TopicPartition(record.topic, record.partition): record.offset + 1})

    def _handle(self, record, stop: threading.Event) -> None:
        tp = TopicPartition(record.topic, record.partition)
        try:
            trigger = codec.decode(record.value, record.headers, events_pb2.RetrainTrigger)
            if not trigger.trigger_id or not trigger.adapter_alias:
                raise codec.UndecodableRecord("missing_field", "RetrainTrigger lacks trigger_id or adapter_alias")
        except codec.UndecodableRecord as exc:
            self.dead_letters(record, exc.error_type, exc.reason)
            self.metrics.triggers.labels("invalid").inc()
            self.consumer.commit({tp: record.offset + 1})
            return
        try:
            self.pipeline.admit(trigger)
        except TriggerRefused as exc:  # never trains: dead-lettered with the reason, recorded, committed
            self.dead_letters(record, exc.reason, str(exc))
            self.metrics.triggers.labels(exc.reason).inc()
            if exc.reason != "invalid_identifier":  # an outcome row needs a trigger id the rules allow
                self.outcomes.skip(trigger, str(exc))
            log.warning("trigger %s refused (%s): %s", ids.shown(trigger.trigger_id), exc.reason, exc)
            self.consumer.commit({tp: record.offset + 1})
            return
        except grpc.RpcError as exc:  # the replica is unreachable: not a verdict, try this trigger again
            log.warning("cannot check trigger %s against inference (%s); retrying", trigger.trigger_id,
                        exc.code() if hasattr(exc, "code") else exc)
            self.consumer.raw.seek(tp, record.offset)
            stop.wait(self.s.retry_backoff_s)
            return
        done = self.outcomes.finished(trigger.trigger_id, trigger.dedupe_key)
        if done is not None:
            log.info("trigger %s already handled (%s: %s)", trigger.trigger_id, done[0], done[1])
            self.metrics.triggers.labels("duplicate").inc()
            self.consumer.commit({tp: record.offset + 1})
            return
        self.metrics.track_alias(trigger.adapter_alias)
        self.metrics.triggers.labels("accepted").inc()
        attempt = self.outcomes.start(trigger)
        log.info("trigger %s for %s (attempt %d): %s", trigger.trigger_id, trigger.adapter_alias, attempt,
                 trigger.reason)
        outcome = self._run_paused(trigger, tp, stop)
        if outcome is None:  # stopping: leave the trigger uncommitted, it is redelivered
            return
        self.outcomes.finish(outcome)  # durable before the offset moves
        self.metrics.runs.labels(outcome.alias, outcome.result).inc()
        self.consumer.commit({tp: record.offset + 1})
        log.info("trigger %s finished: %s %s (%s)", trigger.trigger_id, outcome.result, outcome.version,
                 outcome.detail.splitlines()[0] if outcome.detail else "")

    def _run_paused(self, trigger, tp: TopicPartition, stop: threading.Event) -> RunOutcome | None:
        raw = self.consumer.raw
        raw.pause(tp)
        self.metrics.in_progress.labels(trigger.adapter_alias).set(1)
        future: Future = self._pool.submit(self.run_with_retries, trigger)
        try:
            while not future.done():
                raw.poll(timeout_ms=1000)  # keeps group membership alive; returns nothing while paused
                if stop.is_set():
                    return None
            return future.result()
        finally:
            self.metrics.in_progress.labels(trigger.adapter_alias).set(0)
            raw.resume(tp)

    def run_with_retries(self, trigger) -> RunOutcome:
        """Run with retries (transient broker or replica trouble); a retry resumes from the registered
        version. After the last try the run is an outcome too (error in the detail) and a canary it
        left behind is rolled back, so traffic is never left split."""
        error = ""
        for attempt in range(1, self.s.run_attempts + 1):
            try:
                return self.pipeline.run(trigger)
            except Exception as exc:
                log.exception("run for trigger %s failed (try %d/%d)", trigger.trigger_id, attempt,
                              self.s.run_attempts)
                error = f"{type(exc).__name__}: {exc}"
                if attempt < self.s.run_attempts:
                    time.sleep(self.s.retry_backoff_s)
        detail = error
        try:
            detail += self.pipeline.abandon(trigger)
        except Exception as exc:
            log.exception("could not roll back the canary of trigger %s", trigger.trigger_id)
            detail += f"; canary rollback failed: {type(exc).__name__}: {exc}"
        return RunOutcome(trigger.trigger_id, trigger.adapter_alias, "", "failed", detail)

    def close(self) -> None:
        self.consumer.close()
        self.producer.close()
        self._pool.shutdown(wait=False, cancel_futures=True)


def outcomes_json(settings: RetrainerSettings) -> str:
    return json.dumps(Outcomes(settings.state_dir / "outcomes.sqlite").all(), indent=2)
