"""The monitor's consumer loop: predictions and feedback in, metrics and RetrainTriggers out.

A record, followed: ``EventConsumer.process`` decodes it (or dead-letters it) and calls
:meth:`Monitor._handle`, which skips replays below the stored offset; a prediction is validated
(:mod:`.validation`), routed to its stream and becomes a :class:`.features.Sample` in the batch;
a prediction also feeds one stream per slice it is in (``lang=es``, a declared tag's value;
``core.slices``), each with its own windows, rates and episodes; feedback goes to its prediction's
streams through the :class:`.join.FeedbackJoin`. Before the batch's
offsets are committed (:meth:`Monitor._flush`): the prompts :meth:`.streams.Stream.wants_embedding`
picks are embedded in one call, each sample goes to its stream (windows, tests, policy), a due
trigger becomes a RetrainTrigger (:mod:`.triggers`), and the :class:`.checkpoint.Checkpoint`
publishes the triggers and commits state and offsets together. The collaborators are passed in;
:func:`driftloop.monitor.app.build_monitor` builds the real ones.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Protocol

import numpy as np
from prometheus_client import CollectorRegistry

from driftloop.core.embedding import EmbeddingCache
from driftloop.core.kafka import DeadLetterSink, Delivered
from driftloop.core.metrics import MonitorMetrics
from driftloop.core.slices import slice_labels
from driftloop.core.timestamps import seconds
from driftloop.core.topics import FEEDBACK, PREDICTIONS
from driftloop.monitor.backends import DriftBackend
from driftloop.monitor.checkpoint import Checkpoint, Producer
from driftloop.monitor.exporter import Exporter
from driftloop.monitor.features import Sample
from driftloop.monitor.join import FeedbackJoin, join_keys
from driftloop.monitor.rollouts import RolloutFollower
from driftloop.monitor.settings import MonitorSettings
from driftloop.monitor.shedding import LoadShedder, consumer_lag, embedding_draw
from driftloop.monitor.state import StateStore
from driftloop.monitor.streams import Stream, stream_key
from driftloop.monitor.triggers import retrain_trigger
from driftloop.monitor.validation import not_analysed, validate_feedback, validate_prediction
from driftloop.v1 import events_pb2

log = logging.getLogger(__name__)

DeadLetter = Callable[[Any, str, str], None]  # (record, error_type, reason)


class EventSource(Protocol):
    """What the monitor needs of its predictions+feedback consumer (``core.kafka.EventConsumer``)."""

    raw: Any  # the kafka-python consumer, for the lag

    def process(self, handler: Callable[[Delivered], None], timeout_ms: int,
                before_commit: Callable[[], None]) -> int: ...

    def close(self) -> None: ...


class Embedder(Protocol):
    def embed(self, texts: list[str]) -> np.ndarray: ...


class Clock(Protocol):
    def time(self) -> float: ...

    def monotonic(self) -> float: ...


@dataclass
class _Pending:
    stream: Stream
    sample: Sample
    request_id: str


class Monitor:
    def __init__(self, settings: MonitorSettings, *, events: Callable[[DeadLetter], EventSource],
                 producer: Producer, rollouts: Any, embedder: Embedder, backend: DriftBackend, store: StateStore,
                 clock: Clock = time, registry: CollectorRegistry | None = None) -> None:
        """``events`` opens the consumer, given the monitor's dead-letter policy; ``rollouts`` is the
        adapter-rollouts consumer (``rollouts.open_rollout_consumer``); ``clock`` has ``time()`` and
        ``monotonic()`` (the ``time`` module)."""
        self.s = settings
        self.registry = registry or CollectorRegistry()
        self.metrics = MonitorMetrics(self.registry)
        self.exporter = Exporter(self.metrics)
        self.exporter.info(settings)
        self.producer, self.embedder, self.backend, self.store, self.clock = producer, embedder, backend, store, clock
        self.embeddings = EmbeddingCache(settings.embed_cache_size)
        self.streams: dict[str, Stream] = store.load_streams(settings)
        for st in self.streams.values():
            self.exporter.stream(st)
        self.checkpoint = Checkpoint(store, producer, settings.publish_timeout_s)
        self.dead_letters = DeadLetterSink(producer, settings.group_id, timeout=settings.publish_timeout_s)
        self.events = events(self._dead_letter)
        self.join = FeedbackJoin(store, self.streams, self.checkpoint, self.metrics)
        self.follower = RolloutFollower(rollouts, store, self.checkpoint, self.streams)
        self.shedder = LoadShedder(settings)
        self.exporter.sample_rate(self.shedder.share)
        self._batch: list[_Pending] = []
        self._last_expiry = clock.monotonic()
        self._handling = 0.0  # seconds in _handle during the current poll (the stage "handle")
        self._flushing = 0.0  # seconds in _flush during the current poll

    # -- the loop -----------------------------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            self.step()

    def step(self) -> int:
        """Follow the rollouts, then consume one batch (one checkpoint); measure the lag now and then."""
        t0 = time.perf_counter()
        for st in self.follower.poll(self.clock.time()):
            self.exporter.stream(st)
        self._stage("other", t0)
        self.checkpoint.begin()
        self._handling = self._flushing = 0.0
        t0 = time.perf_counter()
        try:
            n = self.events.process(self._handle, timeout_ms=self.s.poll_timeout_ms, before_commit=self._flush)
        except BaseException:
            self.checkpoint.abort()
            self._batch.clear()
            raise
        if n == 0:
            self.checkpoint.abort()  # nothing consumed: close the empty transaction
        else:  # what process() spent outside our handler and flush: poll, fetch, decode, offset commit
            self.metrics.stage_seconds.labels("kafka").inc(
                max(0.0, time.perf_counter() - t0 - self._handling - self._flushing))
            self.metrics.stage_seconds.labels("handle").inc(self._handling)
        t0 = time.perf_counter()
        self._shed_load()
        self._stage("other", t0)
        return n

    def _stage(self, name: str, since: float) -> float:
        """Count the time since ``since`` (perf_counter) to stage ``name``; return now."""
        now = time.perf_counter()
        self.metrics.stage_seconds.labels(name).inc(now - since)
        return now

    def _dead_letter(self, record: Any, error_type: str, reason: str) -> None:
        self.dead_letters(record, error_type, reason)
        self.metrics.dlq.labels(error_type).inc()
        self.metrics.events.labels(record.topic, "dead_lettered").inc()
        self.checkpoint.store_offset(record.topic, record.partition, record.offset + 1)

    def _handle(self, d: Delivered) -> None:
        t0 = time.perf_counter()
        try:
            r = d.record
            if r.offset < self.store.next_offset(r.topic, r.partition):
                self.metrics.events.labels(r.topic, "duplicate").inc()  # replayed below the stored offset
                return
            self.checkpoint.store_offset(r.topic, r.partition, r.offset + 1)
            if isinstance(d.event, events_pb2.PredictionEvent):
                self._on_prediction(d.event)
            else:
                self._on_feedback(d.event)
        finally:
            self._handling += time.perf_counter() - t0

    # -- predictions and feedback -----------------------------------------------------------------
    def _on_prediction(self, e: events_pb2.PredictionEvent) -> None:
        validate_prediction(e, self.s, self.clock.time())
        streams, sample, result = self._route(e)
        self.metrics.events.labels(PREDICTIONS.name, result).inc()
        if sample is None:
            return
        for i, st in enumerate(streams):  # each stream its own copy: embeddings are chosen per stream
            self._batch.append(_Pending(st, sample if i == 0 else replace(sample), e.request_id))
        self.join.prediction(streams, e.request_id)  # feedback that arrived first counts now

    def _route(self, e: events_pb2.PredictionEvent) -> tuple[list[Stream], Sample | None, str]:
        """The streams a valid prediction feeds — its alias's, then its slices' — and its sample
        (result ``processed``), or none and why not."""
        reason = not_analysed(e)
        if reason is not None:
            return [], None, reason
        st = self._stream(e.model, e.adapter_alias)
        if st is None:
            return [], None, "stream_limit"
        sample = Sample.from_event(e)
        streams = [st, *self._slices(e, sample.prompt)]
        if not self.store.remember_prediction(e.request_id, join_keys(streams), seconds(e.request_time)):
            return [], None, "duplicate"
        return streams, sample, "processed"

    def _slices(self, e: events_pb2.PredictionEvent, asked: str) -> list[Stream]:
        """The slice streams of a prediction asking ``asked`` (the sample's embedded text); a slice
        beyond ``max_slices`` of its alias is counted."""
        if not self.s.max_slices:
            return []
        out = []
        for label in slice_labels(asked, e.tags, self.s.slice_tags, self.s.slice_language):
            st = self._stream(e.model, e.adapter_alias, label)
            if st is None:
                self.metrics.slice_overflow.labels(e.model, e.adapter_alias).inc()
            else:
                out.append(st)
        return out

    def _stream(self, model: str, alias: str, slice_label: str = "") -> Stream | None:
        """The stream of (model, alias[, slice]); a new alias stream only below ``max_streams``, a new
        slice stream only below ``max_slices`` for its alias (None beyond)."""
        key = stream_key(model, alias, slice_label)
        st = self.streams.get(key)
        if st is not None:
            return st
        if slice_label:
            if sum(1 for x in self.streams.values() if x.slice and (x.model, x.alias) == (model, alias)) \
                    >= self.s.max_slices:
                return None
        elif sum(1 for x in self.streams.values() if not x.slice) >= self.s.max_streams:
            return None
        st = self.streams[key] = Stream(model, alias, self.s, version=self.store.rollout(alias)[1],
                                        slice=slice_label)
        if slice_label:
            self.metrics.slice_episode_active.labels(model, alias, slice_label).set(0)
        else:
            self.metrics.triggers.labels(model, alias)  # at 0: the first trigger is an increase() too
            for result in ("raised", "recovered", "exhausted"):
                self.metrics.follow_ups.labels(model, alias, result)
        return st

    def _on_feedback(self, e: events_pb2.FeedbackEvent) -> None:
        validate_feedback(e, self.s, self.clock.time())
        self.metrics.events.labels(FEEDBACK.name, "processed").inc()
        self.join.feedback(e, self.clock.time())

    # -- the batch ----------------------------------------------------------------------------------
    def _flush(self) -> None:
        """The batch's ``before_commit``: embed, feed the streams, expire old joins, checkpoint."""
        t0 = start = time.perf_counter()
        batch, self._batch = self._batch, []
        self._embed(batch)
        t0 = self._stage("embedding", t0)
        now = self.clock.time()
        for p in batch:
            self._feed(p, now)
        for st in {p.stream.key: p.stream for p in batch}.values():
            self.exporter.reference(st)
        t0 = self._stage("streams", t0)
        self._expire_joins(now)
        for t in self.checkpoint.commit(now):
            self.metrics.triggers.labels(t.model, t.adapter_alias).inc()
            log.warning("RetrainTrigger %s for %s/%s: %s", t.trigger_id, t.model, t.adapter_alias, t.reason)
        self._flushing = self._stage("checkpoint", t0) - start

    def _embed(self, batch: list[_Pending]) -> None:
        chosen = self._to_embed(batch)
        if not chosen:
            return
        texts = {p.request_id: p.sample.prompt for p in chosen}  # a prompt its slices chose too: embedded once
        with self.metrics.detector_seconds.labels("embedding").time():
            got, hits = self.embeddings.embed(list(texts.values()), self.embedder.embed)
        vectors = dict(zip(texts, got, strict=True))
        self.metrics.embeddings.labels("cache").inc(hits)
        self.metrics.embeddings.labels("model").inc(len(texts) - hits)
        for p in chosen:
            p.sample.embedding = vectors[p.request_id]

    def _to_embed(self, batch: list[_Pending]) -> list[_Pending]:
        """Per stream, in order: what ``Stream.wants_embedding`` picks at the shedder's share."""
        by_stream: dict[str, list[_Pending]] = {}
        for p in batch:
            by_stream.setdefault(p.stream.key, []).append(p)
        chosen: list[_Pending] = []
        for pending in by_stream.values():
            draws = [embedding_draw(p.request_id) for p in pending]
            wants = pending[0].stream.wants_embedding(draws, self.shedder.share)
            chosen += [p for p, want in zip(pending, wants, strict=True) if want]
        return chosen

    def _feed(self, p: _Pending, now: float) -> None:
        st = p.stream
        closed = st.add_prediction(p.sample, self.backend, now)
        self.checkpoint.changed(st)
        outcome = "error" if p.sample.error else "ok"
        if st.slice:
            self.metrics.slice_predictions.labels(st.model, st.alias, st.slice, outcome).inc()
        else:
            self.metrics.predictions.labels(st.model, st.alias, outcome).inc()
            self.metrics.latency.labels(st.model, st.alias).observe(p.sample.latency)
        if closed is None:
            return
        for name, duration in closed.durations.items():
            self.metrics.detector_seconds.labels(name).observe(duration)
            result = st.signals[name].result
            if not st.slice:
                self.metrics.drift_tests.labels(st.model, st.alias, name, "drift" if result is not None and
                                                result.detected else "no_drift").inc()
        self.exporter.stream(st)
        for event in st.follow_up_events:  # (only the alias's stream is followed up: Stream.reset)
            self.metrics.follow_ups.labels(st.model, st.alias, event).inc()
        st.follow_up_events.clear()
        if closed.trigger is None:
            ep = st.episode
            if ep is not None and not ep.triggered and self._answered(st):
                ep.triggered = True  # covered by the trigger another stream of the alias has out
            return
        if self._answered(st):
            log.info("%s/%s%s: the alias already has a trigger out for this episode", st.model, st.alias,
                     f" slice {st.slice}" if st.slice else "")
            return
        self._covered(st, now)
        self.checkpoint.add_trigger(retrain_trigger(closed.trigger, self.s, now))

    def _answered(self, fired: Stream) -> bool:
        """Another stream of the alias (its whole traffic, or a slice) has an episode whose trigger is
        out, or the alias's episode is being followed up (rounds): the change this stream sees is being
        answered already. A round itself is never held back: only the alias's stream raises rounds."""
        if fired.follow_up is not None:
            return False
        for st in self.streams.values():
            if st is fired or (st.model, st.alias) != (fired.model, fired.alias):
                continue
            if (st.episode is not None and st.episode.triggered) or st.follow_up is not None:
                return True
        return False

    def _covered(self, fired: Stream, now: float) -> None:
        """One trigger answers every stream of its alias: the others share its cooldown, and an episode
        they have open counts as triggered by it (instead of training the same change twice)."""
        for st in self.streams.values():
            if st is not fired and (st.model, st.alias) == (fired.model, fired.alias):
                st.last_trigger_at = now
                if st.episode is not None:
                    st.episode.triggered = True
                self.checkpoint.changed(st)

    def _expire_joins(self, now: float) -> None:
        if self.clock.monotonic() - self._last_expiry <= self.s.join_expiry_interval_s:
            return
        self._last_expiry = self.clock.monotonic()
        expired = self.store.expire(now - self.s.join_ttl_s, self.s.join_max_entries)
        if expired:
            self.metrics.feedback_unmatched.labels("expired").inc(expired)

    def _shed_load(self) -> None:
        if not self.shedder.due(self.clock.monotonic()):
            return
        lag = consumer_lag(self.events.raw)
        if lag is not None:
            self.exporter.lag(lag)
            self.exporter.sample_rate(self.shedder.update(sum(lag.values())))

    def close(self) -> None:
        self.events.close()
        self.follower.close()
        self.producer.close()
        self.store.close()
