"""Training examples from live traffic: feedback (corrections, and confirmed answers) joined to its
prediction by request id, read from Kafka from a time on (no consumer group: a bounded scan of both
topics)."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import TypeVar

from kafka import KafkaConsumer
from kafka.structs import TopicPartition

from driftloop.core import codec
from driftloop.core.chat import asked
from driftloop.core.settings import KafkaSettings
from driftloop.core.timestamps import seconds
from driftloop.core.topics import FEEDBACK, PREDICTIONS, TopicSpec
from driftloop.retrainer.data import Example
from driftloop.v1 import events_pb2

M = TypeVar("M")


def question_from_prompt(prompt: str, template: str) -> str:
    """Invert the prompt template (``Q: {question}\\nA:``) to get the rider's question back."""
    head, _, tail = template.partition("{question}")
    m = re.fullmatch(re.escape(head) + r"(.*)" + re.escape(tail), prompt, flags=re.DOTALL)
    return (m.group(1) if m else prompt).strip()


def _scan_records(settings: KafkaSettings, topic: str, since: float, timeout_s: float = 60.0):
    consumer = KafkaConsumer(**settings.client_config(), client_id=f"{settings.client_id}-retrainer-scan",
                             group_id=None, enable_auto_commit=False)
    try:
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        consumer.assign(tps)
        ends = consumer.end_offsets(tps)
        starts = consumer.offsets_for_times({tp: int(since * 1000) for tp in tps})
        for tp in tps:
            found = starts.get(tp)
            consumer.seek(tp, found.offset if found is not None else ends[tp])
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and any(consumer.position(tp) < ends[tp] for tp in tps):
            for records in consumer.poll(timeout_ms=500).values():
                for r in records:
                    if r.offset < ends[TopicPartition(r.topic, r.partition)]:
                        yield r
    finally:
        consumer.close(autocommit=False)


def scan_events(settings: KafkaSettings, topic: TopicSpec, since: float, cls: type[M]) -> Iterator[M]:
    """Decoded events of ``topic`` from ``since`` (epoch s) to the end as of now; undecodable records
    are skipped (the monitor dead-letters them)."""
    for r in _scan_records(settings, topic.name, since):
        try:
            yield codec.decode(r.value, r.headers, cls)
        except codec.UndecodableRecord:
            continue


def question_of(p: events_pb2.PredictionEvent, template: str) -> str:
    """The question a prediction answered: a conversation's last user turn, or a raw prompt read back
    through the prompt template (a training row is put to the model by ``prompts.PromptFormat``)."""
    question = asked(p)
    return question_from_prompt(p.prompt, template) if question is None else question.strip()


def context_of(p: events_pb2.PredictionEvent) -> tuple[tuple[str, str], ...] | None:
    """The turns a conversation had before its last user turn (system prompt, history), as the request
    sent them (the event bounds each); None for a raw prompt."""
    last = max((i for i, m in enumerate(p.messages) if m.role == "user"), default=None)
    return None if last is None else tuple((m.role, m.content) for m in p.messages[:last])


def collect_feedback(settings: KafkaSettings, alias: str, since: float, template: str,
                     confirmed_since: float | None = None) -> list[Example]:
    """Examples for ``alias`` from feedback joined to its prediction: corrections since ``since``
    (source ``feedback``: the rider's answer) and, when ``confirmed_since`` is given, answers riders
    rated positive since then (source ``confirmed``: behaviour to keep, a free replay set)."""
    first = since if confirmed_since is None else min(since, confirmed_since)
    wanted: dict[str, events_pb2.FeedbackEvent] = {}
    for fb in scan_events(settings, FEEDBACK, first, events_pb2.FeedbackEvent):
        t = seconds(fb.time)
        correction = bool(fb.correction.strip()) and t >= since
        confirmed = (confirmed_since is not None and fb.rating == events_pb2.RATING_POSITIVE
                     and not fb.correction.strip() and t >= confirmed_since)
        if correction or confirmed:
            wanted[fb.request_id] = fb
    out = []
    for p in scan_events(settings, PREDICTIONS, first, events_pb2.PredictionEvent):
        fb = wanted.get(p.request_id)
        if fb is None or p.adapter_alias != alias or p.error_code:
            continue
        correction = fb.correction.strip()
        out.append(Example(question_of(p, template), correction or p.completion.strip(),
                           "feedback" if correction else "confirmed", p.tags.get("slice", ""),
                           seconds(fb.time), p.completion.strip() if correction else "", context_of(p)))
    return out
