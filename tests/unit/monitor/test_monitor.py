"""Monitor in-process with small fakes (no Kafka, no embedding model): a batch feeds the streams,
a due trigger is published once, and state, triggers and offsets become durable together — or,
when the trigger publish fails, nothing does."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from kafka.errors import KafkaTimeoutError
from prometheus_client import CollectorRegistry

from driftloop.core.topics import DLQ, FEEDBACK, PREDICTIONS, RETRAIN_TRIGGERS
from driftloop.monitor.backends import ScipyBackend
from driftloop.monitor.service import Monitor
from driftloop.monitor.settings import MonitorSettings
from driftloop.monitor.state import StateStore
from driftloop.monitor.streams import stream_key
from tests.unit.monitor.fakes import (
    T0,
    FakeClock,
    FakeEmbedder,
    FakeEvents,
    FakeProducer,
    FakeRollouts,
    Record,
    feedbacks,
    predictions,
)


def settings(tmp_path: Path, **over) -> MonitorSettings:
    base = dict(reference_size=20, window_size=10, rate_window=10, min_samples=5, backend="scipy",
                trigger_signals=("negative_feedback_rate",), state_dir=tmp_path)
    return MonitorSettings(**{**base, **over})


class Rig:
    def __init__(self, s: MonitorSettings) -> None:
        self.s = s
        self.path = s.state_dir / "monitor.sqlite"
        self.producer, self.rollouts, self.embedder, self.clock = (FakeProducer(), FakeRollouts(), FakeEmbedder(),
                                                                   FakeClock())
        self.registry = CollectorRegistry()
        self.monitor = Monitor(s, events=FakeEvents, producer=self.producer, rollouts=self.rollouts,
                               embedder=self.embedder, backend=ScipyBackend(0.01, 20), store=StateStore(self.path),
                               clock=self.clock, registry=self.registry)
        self.events: FakeEvents = self.monitor.events  # type: ignore[assignment]

    def batch(self, *parts: list) -> int:
        self.events.batches.append([item for part in parts for item in part])
        return self.monitor.step()

    def metric(self, name: str, **labels: str) -> float:
        return self.registry.get_sample_value(name, labels) or 0.0

    def durable(self, sql: str) -> list:
        """What another connection sees: only committed state."""
        db = sqlite3.connect(self.path)
        try:
            return db.execute(sql).fetchall()
        finally:
            db.close()


@pytest.fixture()
def rig(tmp_path: Path) -> Rig:
    return Rig(settings(tmp_path))


def test_a_batch_feeds_the_streams_and_commits_state_trigger_and_offsets_together(rig: Rig) -> None:
    at_send: list = []
    rig.producer.on_send = lambda: at_send.append(rig.durable("SELECT * FROM offsets"))
    # 20 reference + 10 window predictions, and negative feedback on 10 of them: the window closes
    # with a negative-feedback rate of 1.0 over 10 samples.
    assert rig.batch(predictions(range(30), T0 - 10), feedbacks(range(20, 30), negative=True)) == 40

    st = rig.monitor.streams[stream_key("m", "a")]
    assert len(st.ref_features) == 20 and st.windows_tested == 1 and list(st.negatives) == [True] * 10
    triggers = rig.producer.of_topic(RETRAIN_TRIGGERS.name)
    assert len(triggers) == 1 and triggers[0].reason.endswith("negative_feedback_rate")
    assert triggers[0].negative_feedback_count == 10 and triggers[0].adapter_version == ""
    assert at_send == [[]]  # the trigger was acknowledged before anything was committed ...
    offsets = {(PREDICTIONS.name, 0, 30), (FEEDBACK.name, 0, 10)}
    assert set(rig.durable("SELECT topic, part, next_offset FROM offsets")) == offsets  # ... then all at once
    assert rig.durable("SELECT COUNT(*) FROM streams") == [(2,)]  # the alias's, and its slice lang=latin
    assert rig.durable("SELECT dedupe_key FROM triggers") == [(triggers[0].dedupe_key,)]
    assert rig.events.commits == [{(PREDICTIONS.name, 0): 30, (FEEDBACK.name, 0): 10}]  # Kafka last
    assert rig.metric("driftloop_monitor_retrain_triggers_total", model="m", adapter_alias="a") == 1
    assert rig.metric("driftloop_monitor_reference_samples", model="m", adapter_alias="a") == 20
    assert rig.metric("driftloop_monitor_predictions_total", model="m", adapter_alias="a", outcome="ok") == 30
    assert rig.metric("driftloop_monitor_rate", model="m", adapter_alias="a", detector="negative_feedback_rate") == 1
    assert rig.metric("driftloop_monitor_detector_duration_seconds_count", detector="prompt_length") == 1
    assert rig.metric("driftloop_monitor_detector_duration_seconds_count", detector="embedding") == 1

    # The next window still fires, but the episode has had its trigger.
    rig.clock.advance(5)
    rig.batch(predictions(range(30, 40), T0 - 5))
    assert st.windows_tested == 2 and len(rig.producer.of_topic(RETRAIN_TRIGGERS.name)) == 1

    # The first batch redelivered: below the stored offsets, skipped, nothing counted twice.
    rig.batch(predictions(range(30), T0 - 10), feedbacks(range(20, 30), negative=True))
    assert rig.metric("driftloop_monitor_events_total", topic=PREDICTIONS.name, result="duplicate") == 30
    assert rig.metric("driftloop_monitor_events_total", topic=FEEDBACK.name, result="duplicate") == 10
    assert st.windows_tested == 2 and len(rig.producer.of_topic(RETRAIN_TRIGGERS.name)) == 1


def test_a_failing_trigger_publish_commits_nothing(rig: Rig) -> None:
    rig.producer.fail = True
    with pytest.raises(KafkaTimeoutError):
        rig.batch(predictions(range(30), T0 - 10), feedbacks(range(20, 30), negative=True))
    assert rig.events.commits == []  # Kafka offsets untouched: the batch is redelivered
    for table in ("offsets", "streams", "joins", "triggers"):
        assert rig.durable(f"SELECT COUNT(*) FROM {table}") == [(0,)], table
    assert rig.monitor.store.next_offset(PREDICTIONS.name, 0) == -1

    # A restarted monitor replays the batch from the durable state and publishes the trigger once.
    again = Rig(rig.s)
    again.batch(predictions(range(30), T0 - 10), feedbacks(range(20, 30), negative=True))
    assert len(again.producer.of_topic(RETRAIN_TRIGGERS.name)) == 1
    assert again.durable("SELECT COUNT(*) FROM joins") == [(30,)]


def test_bad_records_are_dead_lettered_and_their_offsets_kept(rig: Rig) -> None:
    [(bad, _)] = predictions(range(1), T0 - 10)
    bad.request_id = ""
    rig.batch(predictions(range(1, 3), T0 - 10), [(bad, Record(PREDICTIONS.name, 0, 3))])
    letters = rig.producer.of_topic(DLQ.name)
    assert [d.error_type for d in letters] == ["missing_field"] and letters[0].origin_offset == 3
    assert rig.monitor.store.next_offset(PREDICTIONS.name, 0) == 4


@pytest.mark.parametrize("case,result", [("source", "ignored"), ("client", "client_error"), ("unrouted", "unrouted")])
def test_predictions_that_are_not_model_health_are_counted_apart(rig: Rig, case: str, result: str) -> None:
    [(e, record)] = predictions(range(1), T0 - 10)
    if case == "source":
        e.tags["source"] = "retrainer-gate"
    elif case == "client":
        e.error_code = "CANCELLED"
    else:
        e.adapter_version = ""
    rig.batch([(e, record)])
    assert rig.metric("driftloop_monitor_events_total", topic=PREDICTIONS.name, result=result) == 1
    assert rig.monitor.streams == {}


def test_streams_beyond_max_streams_are_not_analysed(tmp_path: Path) -> None:
    rig = Rig(settings(tmp_path, max_streams=1))
    rig.batch(predictions(range(2), T0 - 10, alias="a"), predictions(range(2, 4), T0 - 10, first_offset=2, alias="b"))
    assert [k for k, st in rig.monitor.streams.items() if not st.slice] == [stream_key("m", "a")]
    assert rig.metric("driftloop_monitor_events_total", topic=PREDICTIONS.name, result="stream_limit") == 2


def test_feedback_before_its_prediction_is_parked_then_counted_once(rig: Rig) -> None:
    rig.batch(feedbacks(range(2), negative=True))
    assert rig.monitor.streams == {}
    rig.batch(predictions(range(2), T0 - 10))
    st = rig.monitor.streams[stream_key("m", "a")]
    assert list(st.negatives) == [True, True]
    rig.batch(feedbacks(range(2), negative=True, first_offset=2))  # the same verdicts again
    assert rig.metric("driftloop_monitor_events_total", topic=FEEDBACK.name, result="repeated_verdict") == 2
    assert list(st.negatives) == [True, True]


def test_the_lag_lowers_the_embedding_sample_rate(rig: Rig) -> None:
    class Raw:
        def __init__(self, lag: int) -> None:
            self.lag = lag

        def assignment(self):
            return {TP}

        def end_offsets(self, parts):
            return {TP: self.lag}

        def position(self, tp):
            return 0

    from kafka.structs import TopicPartition

    TP = TopicPartition(PREDICTIONS.name, 0)
    rig.events.raw = Raw(rig.s.shed_lag)
    rig.monitor.step()
    assert rig.metric("driftloop_monitor_consumer_lag", topic=PREDICTIONS.name) == rig.s.shed_lag
    assert rig.metric("driftloop_monitor_embedding_sample_rate") == rig.s.shed_sample_rate
    rig.events.raw = Raw(0)
    rig.monitor.step()  # within lag_interval_s: not measured again
    assert rig.metric("driftloop_monitor_embedding_sample_rate") == rig.s.shed_sample_rate
    rig.clock.advance(rig.s.lag_interval_s)
    rig.monitor.step()
    assert rig.metric("driftloop_monitor_embedding_sample_rate") == 1.0
