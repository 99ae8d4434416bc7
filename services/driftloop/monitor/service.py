"""The monitor's consumer loop: predictions and feedback in, metrics and RetrainTriggers out.

Per batch: validate and route each record (bad ones to the DLQ), embed the batch's prompts in
one call, feed the streams in order, publish any RetrainTrigger (acknowledged by Kafka), write
the new state and the batch's offsets in one sqlite transaction, then commit the Kafka offsets.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass

from kafka import KafkaConsumer
from kafka.structs import TopicPartition
from prometheus_client import CollectorRegistry

from driftloop.core import codec, ids
from driftloop.core.kafka import DeadLetterSink, Delivered, EventConsumer, EventProducer, InvalidEvent
from driftloop.core.metrics import MonitorMetrics
from driftloop.core.timestamps import seconds, timestamp
from driftloop.core.topics import ADAPTER_ROLLOUTS, FEEDBACK, PREDICTIONS, RETRAIN_TRIGGERS
from driftloop.monitor.backends import create_backend
from driftloop.monitor.embedding import Embedder
from driftloop.monitor.settings import MonitorSettings
from driftloop.monitor.state import StateStore
from driftloop.monitor.streams import (
    DRIFT_SIGNALS,
    FINISH,
    RATE_SIGNALS,
    Sample,
    Stream,
    TriggerDecision,
    answer_kind,
    rate_threshold,
)
from driftloop.v1 import events_pb2

log = logging.getLogger(__name__)


# Failures a client causes, for events that do not say who caused them (written before error_source).
CLIENT_CODES = frozenset({"CANCELLED", "NOT_FOUND", "INVALID_ARGUMENT", "PERMISSION_DENIED", "UNAUTHENTICATED",
                          "RESOURCE_EXHAUSTED"})


def _check_ids(**rules: tuple[ids.Rule, str, bool]) -> None:
    try:
        for rule, value, required in rules.values():
            rule.check(value, required)
    except ids.InvalidIdentifier as exc:
        raise InvalidEvent(str(exc), "invalid_identifier") from None


def check_time(name: str, t: float, s: MonitorSettings, now: float | None = None) -> None:
    """Event times must be sane: not older than max_event_age_s, not beyond max_clock_skew_s ahead."""
    now = time.time() if now is None else now
    if not (math.isfinite(t) and now - s.max_event_age_s <= t <= now + s.max_clock_skew_s):
        raise InvalidEvent(f"{name} {t:.0f} is outside [now - {s.max_event_age_s:.0f} s, now + "
                           f"{s.max_clock_skew_s:.0f} s]", "invalid_time")


def validate_prediction(e: events_pb2.PredictionEvent, s: MonitorSettings) -> None:
    missing = [f for f in ("request_id", "model") if not getattr(e, f)]
    if not e.HasField("request_time"):
        missing.append("request_time")
    if missing:
        raise InvalidEvent(f"PredictionEvent lacks {', '.join(missing)}", "missing_field")
    _check_ids(request_id=(ids.REQUEST_ID, e.request_id, True), model=(ids.MODEL, e.model, True),
               alias=(ids.ALIAS, e.adapter_alias, False), version=(ids.VERSION, e.adapter_version, False))
    check_time("request_time", seconds(e.request_time), s)
    if not e.error_code and not e.prompt:
        raise InvalidEvent("successful PredictionEvent with an empty prompt", "invalid")
    if e.latency_seconds < 0 or not math.isfinite(e.latency_seconds):
        raise InvalidEvent(f"latency_seconds {e.latency_seconds} is not a duration", "invalid")


def validate_feedback(e: events_pb2.FeedbackEvent, s: MonitorSettings) -> None:
    if not e.request_id or not e.feedback_id:
        raise InvalidEvent("FeedbackEvent lacks request_id or feedback_id", "missing_field")
    _check_ids(request_id=(ids.REQUEST_ID, e.request_id, True), feedback_id=(ids.REQUEST_ID, e.feedback_id, True))
    if e.HasField("time"):
        check_time("time", seconds(e.time), s)
    if e.rating not in (events_pb2.RATING_POSITIVE, events_pb2.RATING_NEGATIVE) and not e.correction:
        raise InvalidEvent("FeedbackEvent has neither a rating nor a correction", "invalid")


def client_caused(e: events_pb2.PredictionEvent) -> bool:
    """A failure the client caused (its unknown alias, its own deadline, its cancel): never model health."""
    if not e.error_code:
        return False
    if e.error_source != events_pb2.ERROR_SOURCE_UNSPECIFIED:
        return e.error_source == events_pb2.ERROR_SOURCE_CLIENT
    return e.error_code in CLIENT_CODES


def is_negative(e: events_pb2.FeedbackEvent) -> bool:
    return e.rating == events_pb2.RATING_NEGATIVE or (e.rating == 0 and bool(e.correction))


@dataclass
class _Pending:
    stream: Stream
    sample: Sample
    request_id: str


class Monitor:
    def __init__(self, settings: MonitorSettings, registry: CollectorRegistry | None = None) -> None:
        self.s = settings
        self.registry = registry or CollectorRegistry()
        self.metrics = MonitorMetrics(self.registry)
        self.metrics.info.info({"backend": settings.backend, "window_size": str(settings.window_size),
                                "reference_size": str(settings.reference_size)})
        self.backend = create_backend(settings.backend, settings.p_value, settings.mmd_permutations)
        self.embedder = Embedder(settings.embed_batch_size)
        self.store = StateStore(settings.state_dir / "monitor.sqlite")
        self.streams = self.store.load_streams(settings)
        for st in self.streams.values():
            self._export(st)
        self.producer = EventProducer(settings.kafka, "monitor")
        self.dead_letters = DeadLetterSink(self.producer, settings.group_id)
        self.consumer: EventConsumer = EventConsumer(
            settings.kafka, [PREDICTIONS, FEEDBACK], settings.group_id,
            {PREDICTIONS.name: events_pb2.PredictionEvent, FEEDBACK.name: events_pb2.FeedbackEvent},
            dead_letters=self._dead_letter, max_poll_records=1000,
        )
        self._rollouts = self._rollout_consumer()
        self._batch: list[_Pending] = []
        self._touched: set[str] = set()
        self._batch_offsets: dict[tuple[str, int], int] = {}
        self._last_lag = 0.0
        self._last_expiry = time.monotonic()
        self.sample_rate = 1.0
        self.metrics.embed_sample_rate.set(1.0)
        self.triggers_sent = 0

    # -- Kafka plumbing ---------------------------------------------------------------------------
    def _rollout_consumer(self) -> KafkaConsumer:
        c = KafkaConsumer(**self.s.kafka.client_config(), client_id=f"{self.s.kafka.client_id}-monitor-rollouts",
                          group_id=None, enable_auto_commit=False, auto_offset_reset="earliest")
        parts = c.partitions_for_topic(ADAPTER_ROLLOUTS.name) or {0}
        tps = [TopicPartition(ADAPTER_ROLLOUTS.name, p) for p in sorted(parts)]
        c.assign(tps)
        for tp in tps:
            nxt = self.store.next_offset(tp.topic, tp.partition)
            if nxt >= 0:
                c.seek(tp, nxt)
            else:
                c.seek_to_beginning(tp)
        return c

    def _dead_letter(self, record, error_type: str, reason: str) -> None:
        self.dead_letters(record, error_type, reason)
        self.metrics.dlq.labels(error_type).inc()
        self.metrics.events.labels(record.topic, "dead_lettered").inc()
        self._batch_offsets[(record.topic, record.partition)] = record.offset + 1

    # -- the loop -----------------------------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            self.step()

    def step(self) -> int:
        self._apply_rollouts()
        self.store.begin()
        try:
            n = self.consumer.process(self._handle, timeout_ms=self.s.poll_timeout_ms, before_commit=self._flush)
        except BaseException:
            self.store.rollback()
            self._batch.clear()
            self._touched.clear()
            self._batch_offsets.clear()
            raise
        if n == 0:
            self.store.rollback()
        now = time.monotonic()
        if now - self._last_lag >= self.s.lag_interval_s:
            self._last_lag = now
            self._measure_lag()
        return n

    def _handle(self, d: Delivered) -> None:
        r = d.record
        if r.offset < self.store.next_offset(r.topic, r.partition):
            self.metrics.events.labels(r.topic, "duplicate").inc()  # replayed below the stored offset
            return
        self._batch_offsets[(r.topic, r.partition)] = r.offset + 1
        if isinstance(d.event, events_pb2.PredictionEvent):
            self._on_prediction(d.event)
        else:
            self._on_feedback(d.event)

    def _stream(self, model: str, alias: str) -> Stream | None:
        """The stream of (model, alias); a new one only below ``max_streams`` (None beyond)."""
        key = f"{model}\x1f{alias}"
        st = self.streams.get(key)
        if st is None:
            if len(self.streams) >= self.s.max_streams:
                return None
            st = self.streams[key] = Stream(model, alias, self.s, version=self.store.rollout(alias)[1])
            self.metrics.triggers.labels(model, alias)  # at 0: the first trigger is an increase() too
        return st

    def _on_prediction(self, e: events_pb2.PredictionEvent) -> None:
        validate_prediction(e, self.s)
        if e.tags.get("source") in self.s.ignore_sources:  # the gate's or an evaluation's requests
            self.metrics.events.labels(PREDICTIONS.name, "ignored").inc()
            return
        if client_caused(e):  # the client's mistake or choice: counted apart, never model health
            self.metrics.events.labels(PREDICTIONS.name, "client_error").inc()
            return
        if e.adapter_alias and not e.adapter_version:  # inference routed no version: not a served alias
            self.metrics.events.labels(PREDICTIONS.name, "unrouted").inc()
            return
        st = self._stream(e.model, e.adapter_alias)
        if st is None:
            self.metrics.events.labels(PREDICTIONS.name, "stream_limit").inc()
            return
        t = seconds(e.request_time)
        if not self.store.remember_prediction(e.request_id, st.key, t):
            self.metrics.events.labels(PREDICTIONS.name, "duplicate").inc()
            return
        logprob = e.mean_token_logprob if e.HasField("mean_token_logprob") else float("nan")
        prompt_len = e.prompt_tokens or len(e.prompt.split())
        features = (float(prompt_len), float(e.completion_tokens), float(logprob),
                    FINISH.get(e.finish_reason, 4), answer_kind(e.completion))
        sample = Sample(e.prompt, features, bool(e.error_code), e.latency_seconds, t)  # server-side errors only
        self._batch.append(_Pending(st, sample, e.request_id))
        self.metrics.events.labels(PREDICTIONS.name, "processed").inc()
        parked = self.store.take_parked(e.request_id)  # feedback that arrived first: its latest verdict
        if parked is not None:
            self._feedback_to(st, e.request_id, None, parked)

    def _on_feedback(self, e: events_pb2.FeedbackEvent) -> None:
        validate_feedback(e, self.s)
        self.metrics.events.labels(FEEDBACK.name, "processed").inc()
        joined = self.store.stream_of(e.request_id)
        negative = is_negative(e)
        if joined is None:
            self.store.park_feedback(e.feedback_id, e.request_id, negative, seconds(e.time) or time.time())
            return
        key, verdict = joined
        st = self.streams.get(key)
        if st is not None:
            self._feedback_to(st, e.request_id, verdict, negative)

    def _feedback_to(self, st: Stream, request_id: str, previous: bool | None, negative: bool) -> None:
        """One verdict per request: the latest. A repeat is counted and changes nothing; a changed
        verdict replaces the earlier one in the rates."""
        if previous is not None and previous == negative:
            self.metrics.events.labels(FEEDBACK.name, "repeated_verdict").inc()
            return
        self.store.set_verdict(request_id, negative)
        if previous is None:
            st.add_feedback(negative)
        else:
            st.revise_feedback(previous, negative)
            self.metrics.events.labels(FEEDBACK.name, "revised_verdict").inc()
        self._touched.add(st.key)
        self.metrics.feedback.labels(st.model, st.alias, "negative" if negative else "positive").inc()

    def _flush(self) -> None:
        """Embed, feed the streams, publish triggers, and persist — before offsets are committed."""
        batch, self._batch = self._batch, []
        chosen = [p for p in batch if not p.stream.has_reference or self._sampled(p.request_id)]
        if chosen:
            t0 = time.perf_counter()
            vectors = self.embedder.embed([p.sample.prompt for p in chosen])
            self.metrics.detector_seconds.labels("embedding").observe(time.perf_counter() - t0)
            for p, v in zip(chosen, vectors, strict=True):
                p.sample.embedding = v
        touched, self._touched = self._touched, set()
        for p in batch:
            decision = p.stream.add_prediction(p.sample, self.backend)
            touched.add(p.stream.key)
            if decision is not None:
                self._publish(decision)
            self.metrics.predictions.labels(p.stream.model, p.stream.alias,
                                            "error" if p.sample.error else "ok").inc()
            self.metrics.latency.labels(p.stream.model, p.stream.alias).observe(p.sample.latency)
            if p.stream.durations:
                for name, seconds in p.stream.durations.items():
                    self.metrics.detector_seconds.labels(name).observe(seconds)
                p.stream.durations.clear()
                self._export(p.stream)
        for key in touched:
            st = self.streams[key]
            self.store.save_stream(st)
            self.metrics.reference_samples.labels(st.model, st.alias).set(len(st.ref_features))
        for (topic, partition), nxt in self._batch_offsets.items():
            self.store.set_offset(topic, partition, nxt)
        self._batch_offsets.clear()
        if time.monotonic() - self._last_expiry > 60:
            self._last_expiry = time.monotonic()
            expired = self.store.expire(time.time() - self.s.join_ttl_s, self.s.join_max_entries)
            if expired:
                self.metrics.feedback_unmatched.labels("expired").inc(expired)
        self.store.commit()

    def _sampled(self, request_id: str) -> bool:
        if self.sample_rate >= 1.0:
            return True
        return ids.request_bucket(request_id) < self.sample_rate

    def _publish(self, d: TriggerDecision) -> None:
        if not self.store.record_trigger(d.dedupe_key, d.trigger_id, time.time()):
            return
        trigger = events_pb2.RetrainTrigger(
            trigger_id=d.trigger_id, dedupe_key=d.dedupe_key, created_time=timestamp(time.time()), model=d.model,
            adapter_alias=d.alias, adapter_version=d.version, window_start=timestamp(d.window_start),
            window_end=timestamp(d.window_end), prediction_count=d.predictions, feedback_count=d.feedback,
            negative_feedback_count=d.negatives, error_count=d.errors,
            reason="sustained or threshold signals: " + ", ".join(d.firing),
        )
        for name, st in d.signals.items():
            if st.value is None:
                continue
            ev = trigger.evidence.add(signal=name, statistic=float(st.value), sample_count=st.samples,
                                      windows_over=st.windows_over, detected=name in d.firing)
            if st.result is not None:
                ev.threshold = st.result.statistic_threshold if st.result.statistic_threshold is not None \
                    else st.result.p_threshold
                ev.p_value = st.result.p_value
            else:
                ev.threshold = rate_threshold(self.s, name)
        self.producer.send_and_wait(RETRAIN_TRIGGERS, d.dedupe_key, trigger)
        self.triggers_sent += 1
        self.metrics.triggers.labels(d.model, d.alias).inc()
        log.warning("RetrainTrigger %s for %s/%s: %s", d.trigger_id, d.model, d.alias, trigger.reason)

    def _export(self, st: Stream) -> None:
        m, labels = self.metrics, (st.model, st.alias)
        for name in DRIFT_SIGNALS:
            sig = st.signals[name]
            if sig.result is None:
                continue
            r = sig.result
            m.statistic.labels(*labels, name).set(r.statistic)
            m.p_value.labels(*labels, name).set(r.p_value)
            m.p_value_threshold.labels(*labels, name).set(r.p_threshold)
            if r.statistic_threshold is not None:
                m.statistic_threshold.labels(*labels, name).set(r.statistic_threshold)
            m.detected.labels(*labels, name).set(int(r.detected))
            m.windows_over.labels(*labels, name).set(sig.windows_over)
            m.window_samples.labels(*labels, name).set(sig.samples)
            m.last_test.labels(*labels, name).set(sig.tested_at)
        for name in RATE_SIGNALS:
            sig = st.signals[name]
            if sig.value is None:
                continue
            m.rate.labels(*labels, name).set(sig.value)
            m.rate_threshold.labels(*labels, name).set(st.rate_threshold(name))
            m.windows_over.labels(*labels, name).set(sig.windows_over)
            m.window_samples.labels(*labels, name).set(sig.samples)
            m.last_test.labels(*labels, name).set(sig.tested_at)
        m.episode_active.labels(*labels).set(int(st.episode is not None))
        m.reference_samples.labels(*labels).set(len(st.ref_features))

    # -- rollouts: a promoted version gets a fresh reference ----------------------------------------
    def _apply_rollouts(self) -> None:
        batches = self._rollouts.poll(timeout_ms=0)
        if not batches:
            return
        self.store.begin()
        for records in batches.values():
            for r in records:
                self.store.set_offset(r.topic, r.partition, r.offset + 1)
                if r.value is None:
                    continue
                try:
                    ro = codec.decode(r.value, r.headers, events_pb2.AdapterRollout)
                except codec.UndecodableRecord as exc:
                    log.error("skipping undecodable rollout at offset %d: %s", r.offset, exc)
                    continue
                generation, stable = self.store.rollout(ro.adapter_alias)
                if ro.generation <= generation:
                    continue
                self.store.set_rollout(ro.adapter_alias, ro.generation, ro.stable.version)
                if ro.stable.version == stable:
                    continue
                for st in self.streams.values():
                    if st.alias == ro.adapter_alias:
                        log.info("%s promoted to %s: rebuilding the reference of %s", ro.adapter_alias,
                                 ro.stable.version, st.model)
                        st.reset(ro.stable.version)
                        self.store.save_stream(st)
                        self._export(st)
        self.store.commit()

    def _measure_lag(self) -> None:
        raw = self.consumer.raw
        parts = raw.assignment()
        if not parts:
            return
        try:
            ends = raw.end_offsets(list(parts))
        except Exception:  # noqa: BLE001 - lag is best effort
            return
        per_topic: dict[str, int] = {}
        lag_total = 0
        for tp in parts:
            lag = max(0, ends.get(tp, 0) - raw.position(tp))
            per_topic[tp.topic] = per_topic.get(tp.topic, 0) + lag
            lag_total += lag
        for topic, lag in per_topic.items():
            self.metrics.lag.labels(topic).set(lag)
        # Under a large backlog, embed only a share of monitored prompts to keep up.
        self.sample_rate = 1.0 if lag_total < 5000 else 0.25
        self.metrics.embed_sample_rate.set(self.sample_rate)

    def close(self) -> None:
        self.consumer.close()
        self._rollouts.close(autocommit=False)
        self.producer.close()
        self.store.close()
