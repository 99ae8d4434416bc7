"""Small fakes of the monitor's collaborators (Kafka consumer and producer, rollouts consumer,
embedder, clock) for in-process tests of Monitor and RolloutFollower."""

from __future__ import annotations

import zlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from kafka.errors import KafkaTimeoutError

from driftloop.core import codec
from driftloop.core.kafka import Delivered, InvalidEvent
from driftloop.core.timestamps import timestamp
from driftloop.core.topics import FEEDBACK, PREDICTIONS, TopicSpec
from driftloop.v1 import events_pb2

T0 = 1_700_000_000.0


@dataclass
class Record:
    topic: str
    partition: int
    offset: int
    key: bytes = b""
    value: bytes | None = b""
    headers: list = field(default_factory=list)


class FakeClock:
    def __init__(self) -> None:
        self.t, self.m = T0, 1000.0

    def time(self) -> float:
        return self.t

    def monotonic(self) -> float:
        return self.m

    def advance(self, seconds: float) -> None:
        self.t += seconds
        self.m += seconds


class FakeRaw:
    """The kafka-python consumer behind EventConsumer, as far as the lag needs it: no assignment."""

    def assignment(self) -> set:
        return set()


class FakeEvents:
    """EventConsumer.process in miniature: handle each record (an InvalidEvent dead-letters it),
    run before_commit, then 'commit' the offsets. An empty queue is an empty poll."""

    def __init__(self, dead_letter: Callable) -> None:
        self.dead_letter = dead_letter
        self.batches: deque[list[tuple[object, Record]]] = deque()
        self.commits: list[dict[tuple[str, int], int]] = []
        self.raw = FakeRaw()
        self.closed = False

    def process(self, handler, timeout_ms: int, before_commit) -> int:
        if not self.batches:
            return 0
        batch = self.batches.popleft()
        offsets = {}
        for event, record in batch:
            try:
                handler(Delivered(event, record))
            except InvalidEvent as exc:
                self.dead_letter(record, exc.error_type, exc.reason)
            offsets[(record.topic, record.partition)] = record.offset + 1
        before_commit()
        self.commits.append(offsets)
        return len(batch)

    def close(self) -> None:
        self.closed = True


class FakeProducer:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str, object]] = []
        self.fail = False
        self.on_send: Callable[[], None] = lambda: None

    def send_and_wait(self, topic: TopicSpec | str, key, event, timeout: float = 30.0):
        self.on_send()
        if self.fail:
            raise KafkaTimeoutError("no acknowledgement")
        self.sent.append((getattr(topic, "name", topic), key, event))

    def of_topic(self, name: str) -> list:
        return [event for topic, _, event in self.sent if topic == name]

    def close(self) -> None:
        pass


class FakeRollouts:
    """The rollouts consumer: poll() hands out queued {partition: [records]} batches."""

    def __init__(self) -> None:
        self.batches: deque[dict] = deque()
        self.closed = False

    def push(self, *records: Record) -> None:
        self.batches.append({0: list(records)})

    def poll(self, timeout_ms: int = 0) -> dict:
        return self.batches.popleft() if self.batches else {}

    def close(self, autocommit: bool = False) -> None:
        self.closed = True


class FakeEmbedder:
    """A deterministic 8-d vector per prompt; remembers how many prompts each call embedded."""

    def __init__(self) -> None:
        self.calls: list[int] = []

    def embed(self, texts: list[str]) -> np.ndarray:
        self.calls.append(len(texts))
        rows = [np.random.default_rng(zlib.crc32(t.encode())).normal(0, 1, 8) for t in texts]
        return np.array(rows, dtype=np.float32).reshape(len(texts), 8)


def prediction(i: int, t: float, model: str = "m", alias: str = "a", **fields) -> events_pb2.PredictionEvent:
    e = events_pb2.PredictionEvent(request_id=f"r{i}", model=model, adapter_alias=alias, adapter_version="v1",
                                   prompt=f"question {i}?", completion=f"answer {i}", prompt_tokens=5 + i % 3,
                                   completion_tokens=7 + i % 4, latency_seconds=0.1, finish_reason="stop",
                                   request_time=timestamp(t), **fields)
    e.mean_token_logprob = -0.5
    return e


def feedback(i: int, negative: bool) -> events_pb2.FeedbackEvent:
    rating = events_pb2.RATING_NEGATIVE if negative else events_pb2.RATING_POSITIVE
    return events_pb2.FeedbackEvent(feedback_id=f"f{i}", request_id=f"r{i}", rating=rating)


def records(topic: TopicSpec, events: list, first_offset: int = 0) -> list[tuple[object, Record]]:
    return [(e, Record(topic.name, 0, first_offset + k)) for k, e in enumerate(events)]


def predictions(ids: range, t: float, first_offset: int | None = None, **kw) -> list[tuple[object, Record]]:
    return records(PREDICTIONS, [prediction(i, t, **kw) for i in ids], ids.start if first_offset is None
                   else first_offset)


def feedbacks(ids: range, negative: bool, first_offset: int = 0) -> list[tuple[object, Record]]:
    return records(FEEDBACK, [feedback(i, negative) for i in ids], first_offset)


def rollout_record(offset: int, alias: str, generation: int, stable: str, topic: str) -> Record:
    ro = events_pb2.AdapterRollout(adapter_alias=alias, rollout_id=f"ro{generation}", generation=generation,
                                   action="promote")
    ro.stable.version, ro.stable.path = stable, f"{alias}/{stable}"
    value, headers = codec.encode(ro)
    return Record(topic, 0, offset, alias.encode(), value, headers)
