"""The retrainer's trigger consumer: idempotent by trigger id and dedupe key (an outcome record per
trigger, see ``outcomes.py``), offsets committed only after the outcome is durable, and the long run
on a worker thread while the consumer keeps polling with its partitions paused (so the group never
rebalances mid-training). A run that fails is retried (tenacity); after the last try it is an
outcome too, and a canary it left behind is rolled back. A gate rejection raises the episode's next
attempt (``episodes.py``), published before the outcome is recorded."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from typing import Protocol

import grpc
from kafka.consumer.fetcher import ConsumerRecord
from kafka.structs import TopicPartition
from tenacity import RetryCallState, Retrying, stop_after_attempt, wait_fixed

from driftloop.core import codec, ids
from driftloop.core.kafka import EventConsumer
from driftloop.core.metrics import RetrainerMetrics
from driftloop.retrainer import episodes
from driftloop.retrainer.outcomes import Outcomes
from driftloop.retrainer.settings import RetrainerSettings
from driftloop.retrainer.triggers import RunOutcome, TriggerRefused, outcome
from driftloop.v1 import events_pb2

log = logging.getLogger(__name__)

DeadLetters = Callable[[ConsumerRecord, str, str], None]
Admit = Callable[[events_pb2.RetrainTrigger], None]  # raises TriggerRefused, or grpc.RpcError (try again)
Publish = Callable[[events_pb2.RetrainTrigger], None]  # onto the triggers topic, acknowledged (or raises)


class PublishFailed(RuntimeError):
    """The episode's next attempt could not be published: the trigger is handled again (its run resumes)."""


class Runner(Protocol):
    def run(self, trigger: events_pb2.RetrainTrigger) -> RunOutcome: ...
    def abandon(self, trigger: events_pb2.RetrainTrigger) -> str: ...


class Retrainer:
    def __init__(self, settings: RetrainerSettings, metrics: RetrainerMetrics, consumer: EventConsumer,
                 dead_letters: DeadLetters, outcomes: Outcomes, admit: Admit, pipeline: Runner,
                 sleep: Callable[[float], None] = time.sleep, publish: Publish | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.s = settings
        self.metrics = metrics
        self.consumer = consumer
        self.dead_letters = dead_letters
        self.outcomes = outcomes
        self.admit = admit
        self.pipeline = pipeline
        self.sleep = sleep
        self.publish = publish
        self.clock = clock
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="retrain-run")

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            for record in self.consumer.poll(timeout_ms=1000, max_records=1):
                try:
                    self._handle(record, stop)
                except Exception as exc:  # a record no rule foresaw: dead-letter it, never a crash loop
                    log.exception("trigger handler failed at %s[%d]@%d", record.topic, record.partition,
                                  record.offset)
                    self._drop(record, "handler_error", f"{type(exc).__name__}: {exc}"[:2000], "invalid")

    def _handle(self, record: ConsumerRecord, stop: threading.Event) -> None:
        tp = TopicPartition(record.topic, record.partition)
        trigger = self._decode(record)
        if trigger is None:
            return
        try:
            runnable = self._admitted(record, trigger)
        except grpc.RpcError as exc:  # the replica is unreachable: not a verdict, try this trigger again
            log.warning("cannot check trigger %s against inference (%s); retrying", trigger.trigger_id,
                        exc.code() if hasattr(exc, "code") else exc)
            self.consumer.raw.seek(tp, record.offset)
            stop.wait(self.s.retry_backoff_s)
            return
        if runnable:
            result = self._run_paused(trigger, tp, stop)
            if result is None:  # stopping: leave the trigger uncommitted, it is redelivered
                return
            try:
                self._finished(trigger, result)
            except PublishFailed as exc:  # handled again: the run resumes from its registered version
                log.error("trigger %s: %s; handling it again", trigger.trigger_id, exc)
                self.consumer.raw.seek(tp, record.offset)
                stop.wait(self.s.retry_backoff_s)
                return
        self._commit(record)

    def _decode(self, record: ConsumerRecord) -> events_pb2.RetrainTrigger | None:
        """The trigger, or None once an undecodable record is dead-lettered and committed."""
        try:
            trigger = codec.decode(record.value, record.headers, events_pb2.RetrainTrigger)
            if not trigger.trigger_id or not trigger.adapter_alias:
                raise codec.UndecodableRecord("missing_field", "RetrainTrigger lacks trigger_id or adapter_alias")
        except codec.UndecodableRecord as exc:
            self._drop(record, exc.error_type, exc.reason, "invalid")
            return None
        return trigger

    def _admitted(self, record: ConsumerRecord, trigger: events_pb2.RetrainTrigger) -> bool:
        """Whether the trigger runs now: refused ones are dead-lettered (and recorded), duplicates skipped."""
        try:
            self.admit(trigger)
        except TriggerRefused as exc:  # never trains: dead-lettered with the reason, recorded, committed
            self.dead_letters(record, exc.reason, str(exc))
            self.metrics.triggers.labels(exc.reason).inc()
            if exc.reason != "invalid_identifier":  # an outcome row needs a trigger id the rules allow
                self.outcomes.skip(trigger, str(exc))
            log.warning("trigger %s refused (%s): %s", ids.shown(trigger.trigger_id), exc.reason, exc)
            return False
        done = self.outcomes.finished(trigger.trigger_id, trigger.dedupe_key)
        if done is not None:
            log.info("trigger %s already handled (%s: %s)", trigger.trigger_id, done[0], done[1])
            self.metrics.triggers.labels("duplicate").inc()
            return False
        self.metrics.track_alias(trigger.adapter_alias)
        self.metrics.triggers.labels("accepted").inc()
        attempt = self.outcomes.start(trigger)
        log.info("trigger %s for %s (attempt %d): %s", trigger.trigger_id, trigger.adapter_alias, attempt,
                 trigger.reason)
        return True

    def _run_paused(self, trigger: events_pb2.RetrainTrigger, tp: TopicPartition,
                    stop: threading.Event) -> RunOutcome | None:
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

    def run_with_retries(self, trigger: events_pb2.RetrainTrigger) -> RunOutcome:
        """Run with retries (transient broker or replica trouble); a retry resumes from the registered
        version. After the last try the run is an outcome too (error in the detail) and a canary it
        left behind is rolled back, so traffic is never left split."""
        def failed_try(state: RetryCallState) -> None:
            log.error("run for trigger %s failed (try %d/%d)", trigger.trigger_id, state.attempt_number,
                      self.s.run_attempts, exc_info=state.outcome.exception())

        retrying = Retrying(stop=stop_after_attempt(self.s.run_attempts), wait=wait_fixed(self.s.retry_backoff_s),
                            sleep=self.sleep, after=failed_try, reraise=True)
        try:
            return retrying(self.pipeline.run, trigger)
        except Exception as exc:
            return outcome(trigger, "", "failed", f"{type(exc).__name__}: {exc}" + self._abandon(trigger))

    def _abandon(self, trigger: events_pb2.RetrainTrigger) -> str:
        try:
            return self.pipeline.abandon(trigger)
        except Exception as exc:
            log.exception("could not roll back the canary of trigger %s", trigger.trigger_id)
            return f"; canary rollback failed: {type(exc).__name__}: {exc}"

    def _finished(self, trigger: events_pb2.RetrainTrigger, result: RunOutcome) -> None:
        if result.result == "rejected":
            result = self._after_rejection(trigger, result)
        elif result.result == "skipped" and trigger.min_corrections:
            self.metrics.after_rejection.labels(result.alias, "no_new_evidence").inc()
        self.outcomes.finish(result)  # durable before the offset moves
        self.metrics.runs.labels(result.alias, result.result).inc()
        log.info("trigger %s finished: %s %s (%s)", trigger.trigger_id, result.result, result.version,
                 result.detail.splitlines()[0] if result.detail else "")

    def _after_rejection(self, trigger: events_pb2.RetrainTrigger, result: RunOutcome) -> RunOutcome:
        """Raise the episode's next attempt (before the outcome is recorded: published at least once; the
        same trigger id if this is redone) and say what happens next in the outcome's detail."""
        follow = episodes.follow_up(trigger, result, self.s, self.clock())
        if follow is not None and self.publish is not None:
            try:
                self.publish(follow)
            except Exception as exc:
                raise PublishFailed(f"could not publish attempt {follow.attempt}: {type(exc).__name__}: {exc}") from exc
        elif follow is not None:
            follow = None  # nowhere to publish (the one-shot CLI): the episode ends here
        self.metrics.after_rejection.labels(result.alias, "retry" if follow else "gave_up").inc()
        step = episodes.next_step(trigger, follow, self.s)
        log.warning("trigger %s: the gate rejected %s. %s", trigger.trigger_id, result.version, step)
        return replace(result, detail=f"{result.detail}\n{step}")

    def _drop(self, record: ConsumerRecord, error_type: str, reason: str, result: str) -> None:
        self.dead_letters(record, error_type, reason)
        self.metrics.triggers.labels(result).inc()
        self._commit(record)

    def _commit(self, record: ConsumerRecord) -> None:
        self.consumer.commit({TopicPartition(record.topic, record.partition): record.offset + 1})

    def close(self) -> None:
        self.consumer.close()
        self._pool.shutdown(wait=False, cancel_futures=True)
