"""Small fakes of the retrainer's collaborators: an inference replica that is also the rollout
topic (it applies what is published, as the rollout follower does), a trainer, a trigger consumer."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from kafka.consumer.fetcher import ConsumerRecord

from driftloop.core import codec
from driftloop.core.topics import RETRAIN_TRIGGERS
from driftloop.retrainer.data import Example
from driftloop.retrainer.train import TrainResult
from driftloop.v1 import events_pb2, inference_pb2


class Fail(Exception):
    """An injected failure (a broker or a disk that fails once)."""


class Replica:
    """Producer of rollout records and the inference replica that applies them; the gate's answers
    come from ``answers`` (alias → question → answer; anything else: "I do not know.")."""

    def __init__(self, alias: str = "qa", stable: str | None = "v1") -> None:
        self.routes: dict[str, inference_pb2.AdapterRoute] = {}
        if stable is not None:
            self.routes[alias] = inference_pb2.AdapterRoute(adapter_alias=alias, stable_version=stable, generation=1)
        self.records: list[events_pb2.AdapterRollout] = []
        self.loaded: list[tuple[str, str, str]] = []
        self.answers: dict[str, dict[str, str]] = {}
        self.fail_sends = 0  # the next n sends raise Fail

    # producer
    def send_and_wait(self, topic, key, record) -> None:
        if self.fail_sends:
            self.fail_sends -= 1
            raise Fail("broker unreachable")
        self.records.append(record)
        assert record.stable.version != record.canary.version, "stable = canary published"
        assert record.stable.path == f"{record.adapter_alias}/{record.stable.version}"
        current = self.routes.get(record.adapter_alias)
        if current is None or record.generation > current.generation:
            self.routes[record.adapter_alias] = inference_pb2.AdapterRoute(
                adapter_alias=record.adapter_alias, stable_version=record.stable.version,
                canary_version=record.canary.version, canary_weight=record.canary_weight,
                generation=record.generation)

    # inference client
    def route(self, alias: str) -> inference_pb2.AdapterRoute | None:
        return self.routes.get(alias)

    def load(self, alias: str, version: str, path: str) -> None:
        self.loaded.append((alias, version, path))

    def unload(self, alias: str, version: str) -> None:
        pass

    def answerer(self, alias: str = "", version: str = ""):
        known = self.answers.get(alias, {})

        def answer(rows: Sequence[Example]) -> tuple[list[str], list[float]]:
            return [known.get(r.question, "I do not know.") for r in rows], [0.01] * len(rows)
        return answer

    def route_of(self, alias: str = "qa") -> tuple[str, str]:
        r = self.routes[alias]
        return r.stable_version, r.canary_version


def corrections(n: int = 80) -> list[Example]:
    """Corrections that pass every cleaning rule, one answer per question."""
    stops = ["Harbour", "Market", "Station", "Museum", "Park", "Bridge", "College", "Airport"]
    return [Example(f"When does route {i} leave {stops[i % len(stops)]} Street?",
                    f"Route {i} leaves at {6 + i % 12} {['am', 'pm'][i % 2]} sharp.", "feedback", "schedule")
            for i in range(n)]


def train(base_dir: Path, train: list[Example], val: list[Example], out_dir: Path, cfg) -> TrainResult:
    """Writes an adapter's files, as train_lora does."""
    (out_dir / "adapter_config.json").write_text(json.dumps({"r": cfg.rank}))
    (out_dir / "adapter_model.safetensors").write_bytes(b"\0")
    return TrainResult(steps=10, best_step=10, best_val_loss=0.1, stopped_early=False, seconds=0.0, device="cpu")


def trigger(trigger_id: str = "t" * 16, alias: str = "qa", version: str = "v1") -> events_pb2.RetrainTrigger:
    t = events_pb2.RetrainTrigger(trigger_id=trigger_id, adapter_alias=alias, adapter_version=version,
                                  dedupe_key=f"test/{alias}/{trigger_id}", reason="test")
    t.created_time.GetCurrentTime()
    return t


def record(event, offset: int = 0) -> ConsumerRecord:
    value, headers = codec.encode(event) if event is not None else (b"garbage", [])
    return ConsumerRecord(RETRAIN_TRIGGERS.name, 0, -1, offset, 0, 0, b"k", value, headers, None, 1, len(value), -1)


class RawConsumer:
    def __init__(self) -> None:
        self.paused: set = set()
        self.seeks: list[tuple] = []

    def pause(self, tp) -> None:
        self.paused.add(tp)

    def resume(self, tp) -> None:
        self.paused.discard(tp)

    def poll(self, timeout_ms: int = 0) -> dict:
        return {}

    def seek(self, tp, offset: int) -> None:
        self.seeks.append((tp, offset))


class Consumer:
    """Hands out its records once, then stops the loop; remembers the commits."""

    def __init__(self, records: list[ConsumerRecord], stop) -> None:
        self.records = list(records)
        self.stop = stop
        self.commits: list[int] = []
        self.raw = RawConsumer()

    def poll(self, timeout_ms: int = 0, max_records: int | None = None) -> list[ConsumerRecord]:
        if not self.records:
            self.stop.set()
            return []
        return [self.records.pop(0)]

    def commit(self, offsets: dict) -> None:
        self.commits += list(offsets.values())

    def close(self) -> None:
        pass
