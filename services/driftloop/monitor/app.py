"""The monitor's real collaborators, built from its settings: the state file, the Kafka producer,
the predictions+feedback consumer group, the rollouts consumer, the embedder and the drift backend."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from driftloop.core.embedding import Embedder
from driftloop.core.kafka import EventConsumer, EventProducer
from driftloop.core.topics import FEEDBACK, PREDICTIONS
from driftloop.monitor.backends import create_backend
from driftloop.monitor.rollouts import open_rollout_consumer
from driftloop.monitor.service import DeadLetter, Monitor
from driftloop.monitor.settings import MonitorSettings
from driftloop.monitor.state import StateStore
from driftloop.v1 import events_pb2

EVENT_TYPES = {PREDICTIONS.name: events_pb2.PredictionEvent, FEEDBACK.name: events_pb2.FeedbackEvent}


def build_monitor(s: MonitorSettings, registry: CollectorRegistry | None = None) -> Monitor:
    store = StateStore(s.state_dir / "monitor.sqlite")

    def events(dead_letter: DeadLetter) -> EventConsumer:
        return EventConsumer(s.kafka, [PREDICTIONS, FEEDBACK], s.group_id, EVENT_TYPES, dead_letters=dead_letter,
                             max_poll_records=s.max_poll_records)

    return Monitor(s, events=events, producer=EventProducer(s.kafka, "monitor"),
                   rollouts=open_rollout_consumer(s, store), embedder=Embedder(s.embed_batch_size),
                   backend=create_backend(s.backend, s.p_value, s.mmd_permutations), store=store, registry=registry)
