"""Builds the retrainer from its settings: the real Kafka and gRPC clients, and every part that uses
them passed in (``build_pipeline`` takes its collaborators as arguments, so tests pass fakes)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from prometheus_client import CollectorRegistry

from driftloop.core.kafka import DeadLetterSink, EventConsumer, EventProducer
from driftloop.core.metrics import RetrainerMetrics
from driftloop.core.topics import RETRAIN_TRIGGERS
from driftloop.retrainer import collect
from driftloop.retrainer.canary import CanaryObserver
from driftloop.retrainer.dataset import Datasets, FeedbackSource
from driftloop.retrainer.evaluate import evaluate
from driftloop.retrainer.gating import Evaluator, Gate, GateClient
from driftloop.retrainer.inference_client import InferenceClient
from driftloop.retrainer.outcomes import Outcomes, path
from driftloop.retrainer.pipeline import Pipeline, Trainer
from driftloop.retrainer.prompts import require_chat_template
from driftloop.retrainer.registry import Registry
from driftloop.retrainer.release import Observe, Release
from driftloop.retrainer.rollouts import Rollouts
from driftloop.retrainer.service import Retrainer
from driftloop.retrainer.settings import RetrainerSettings
from driftloop.retrainer.stale import Embed
from driftloop.retrainer.train import train_lora
from driftloop.retrainer.triggers import Admission
from driftloop.v1 import events_pb2


def build_pipeline(settings: RetrainerSettings, metrics: RetrainerMetrics, registry: Registry,
                   producer: EventProducer, client: GateClient, feedback: FeedbackSource, observe: Observe,
                   trainer: Trainer = train_lora, evaluator: Evaluator = evaluate,
                   clock: Callable[[], float] = time.time, sleep: Callable[[float], None] = time.sleep,
                   embed: Embed | None = None) -> tuple[Pipeline, Rollouts]:
    s = settings
    rollouts = Rollouts(producer, client, registry, metrics, s.rollout_apply_timeout_s, s.rollout_poll_s, clock,
                        sleep)
    release = Release(rollouts, client, registry, observe, metrics, s.canary_weight, clock)
    pipeline = Pipeline(s, metrics, registry, client, Datasets(s, registry, feedback, clock, sleep, embed), trainer,
                        Gate(client, metrics, s.seed, evaluator), release)
    return pipeline, rollouts


def inference_client(s: RetrainerSettings) -> InferenceClient:
    token = s.inference_admin_token.get_secret_value() if s.inference_admin_token else None
    return InferenceClient(s.inference_address, token, s.prompt(), s.gate_concurrency, s.inference_tls,
                           s.inference_ca_file, s.inference_server_name, s.inference_admin_address,
                           s.gate_max_tokens)


def canary_observer(s: RetrainerSettings) -> CanaryObserver:
    return CanaryObserver(s.kafka, s.canary_min_requests, s.canary_max_wait_s, s.canary_max_negative_increase,
                          s.canary_max_error_increase, s.canary_poll_s)


def live_feedback(s: RetrainerSettings) -> FeedbackSource:
    return lambda alias, since, confirmed_since: collect.collect_feedback(s.kafka, alias, since, s.prompt_template,
                                                                          confirmed_since)


@dataclass
class Parts:
    """The retrainer's parts on real clients (what every command but ``versions`` needs)."""

    settings: RetrainerSettings
    metrics: RetrainerMetrics
    producer: EventProducer
    client: InferenceClient
    registry: Registry
    admit: Admission
    pipeline: Pipeline
    rollouts: Rollouts

    def close(self) -> None:
        self.producer.close()
        self.client.close()


def open_parts(settings: RetrainerSettings, prometheus: CollectorRegistry | None = None) -> Parts:
    if settings.prompt_format == "chat":
        require_chat_template(settings.base_model)
    metrics = RetrainerMetrics(prometheus or CollectorRegistry())
    producer = EventProducer(settings.kafka, "retrainer")
    client = inference_client(settings)
    registry = Registry(settings.adapter_root)
    pipeline, rollouts = build_pipeline(settings, metrics, registry, producer, client, live_feedback(settings),
                                        canary_observer(settings))
    admit = Admission(settings.max_trigger_age_s, registry.exists, client, max_attempt=1 + settings.rejection_retries)
    return Parts(settings, metrics, producer, client, registry, admit, pipeline, rollouts)


def build_retrainer(parts: Parts) -> Retrainer:
    """The trigger consumer on top of ``parts`` (its own Kafka consumer in the retrainer's group)."""
    s = parts.settings
    consumer = EventConsumer(s.kafka, [RETRAIN_TRIGGERS], s.group_id, events_pb2.RetrainTrigger,
                             max_poll_records=1, max_poll_interval_ms=300_000)
    def publish(trigger: events_pb2.RetrainTrigger) -> None:  # keyed like the monitor's triggers
        parts.producer.send_and_wait(RETRAIN_TRIGGERS, trigger.dedupe_key, trigger)

    return Retrainer(s, parts.metrics, consumer, DeadLetterSink(parts.producer, s.group_id),
                     Outcomes(path(s)), parts.admit, parts.pipeline, publish=publish)
