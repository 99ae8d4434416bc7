"""Riders: application traffic over gRPC from people who know the truth. Each rider asks a question,
compares the answer with the world as it is, and (for a share of answers) sends feedback: a thumbs
up, or a thumbs down with the correct answer for a share of the wrong ones."""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import grpc

from driftloop.demo import world
from driftloop.retrainer.evaluate import exact_match
from driftloop.v1 import events_pb2, inference_pb2, inference_pb2_grpc


@dataclass
class TrafficStats:
    requests: int = 0
    correct: int = 0
    errors: int = 0
    feedback: int = 0
    negative: int = 0
    corrections: int = 0
    by_version: Counter = field(default_factory=Counter)

    @property
    def accuracy(self) -> float:
        return self.correct / self.requests if self.requests else 0.0

    def to_dict(self) -> dict:
        return {"requests": self.requests, "correct": self.correct, "errors": self.errors, "feedback": self.feedback,
                "negative": self.negative, "corrections": self.corrections, "accuracy": self.accuracy,
                "by_version": dict(self.by_version)}


class Riders:
    def __init__(self, channel: grpc.Channel, alias: str, seed: int, concurrency: int = 4,
                 feedback_share: float = 0.6, correction_share: float = 0.7) -> None:
        self.stub = inference_pb2_grpc.InferenceStub(channel)
        self.alias = alias
        self.rng = random.Random(seed)
        self.concurrency = concurrency
        self.feedback_share = feedback_share
        self.correction_share = correction_share
        self._lock = threading.Lock()
        self.log: list[tuple[float, str, str, bool]] = []  # (time, phase, version, correct) per answer

    def _ask(self, qa: world.QA, phase: str, stats: TrafficStats) -> None:
        with self._lock:  # one seeded stream of decisions, whatever the thread interleaving
            rate, correct_it = self.rng.random() < self.feedback_share, self.rng.random() < self.correction_share
        try:
            r = self.stub.Generate(inference_pb2.GenerateRequest(
                prompt=world.prompt(qa.question), adapter_alias=self.alias,
                tags={"slice": qa.kind, "phase": phase}), timeout=60)
        except grpc.RpcError:
            with self._lock:
                stats.requests += 1
                stats.errors += 1
            return
        good = exact_match(r.text, qa.answer)
        fb = None
        if rate:
            fb = inference_pb2.SubmitFeedbackRequest(
                request_id=r.request_id, rating=events_pb2.RATING_POSITIVE if good else events_pb2.RATING_NEGATIVE,
                correction=qa.answer if (not good and correct_it) else "")
            try:
                self.stub.SubmitFeedback(fb, timeout=10)
            except grpc.RpcError:
                fb = None
        with self._lock:
            self.log.append((time.time(), phase, r.adapter_version, good))
            stats.requests += 1
            stats.correct += good
            stats.by_version[r.adapter_version] += 1
            if fb is not None:
                stats.feedback += 1
                stats.negative += not good
                stats.corrections += bool(fb.correction)

    def run(self, questions: Sequence[world.QA], phase: str, stop: threading.Event | None = None,
            on_progress: Callable[[TrafficStats], None] | None = None,
            rate: float | Callable[[], float] = 0.0) -> TrafficStats:
        """Ask every question (``concurrency`` at a time, at most ``rate`` per second when set, or
        what ``rate()`` says at each request); returns early when ``stop`` is set."""
        stats = TrafficStats()
        next_t = time.monotonic()
        with ThreadPoolExecutor(self.concurrency, thread_name_prefix="rider") as pool:
            pending = []
            for i, qa in enumerate(questions):
                if stop is not None and stop.is_set():
                    break
                per_s = rate() if callable(rate) else rate
                if per_s:
                    next_t = max(next_t + 1.0 / per_s, time.monotonic() - 1.0)
                    time.sleep(max(0.0, next_t - time.monotonic()))
                pending.append(pool.submit(self._ask, qa, phase, stats))
                if len(pending) >= self.concurrency * 2:
                    pending.pop(0).result()
                if on_progress is not None and i % 50 == 49:
                    on_progress(stats)
            for f in pending:
                f.result()
        return stats


def evaluate(channel: grpc.Channel, alias: str, version: str, questions: Sequence[world.QA],
             concurrency: int = 4, metadata: Sequence[tuple[str, str]] = ()) -> dict:
    """Exact match of one pinned version on ``questions`` (no feedback; tagged as evaluation traffic,
    a reserved tag: ``metadata`` carries the admin token)."""
    stub = inference_pb2_grpc.InferenceStub(channel)

    def ask(qa: world.QA) -> bool:
        r = stub.Generate(inference_pb2.GenerateRequest(
            prompt=world.prompt(qa.question), adapter_alias=alias, adapter_version=version,
            sampling=inference_pb2.SamplingParams(temperature=0.0), tags={"source": "evaluation"}),
            metadata=metadata, timeout=60)
        return exact_match(r.text, qa.answer)

    with ThreadPoolExecutor(concurrency) as pool:
        hits = list(pool.map(ask, questions))
    by_register: dict[str, list[bool]] = {}
    for qa, h in zip(questions, hits, strict=True):
        by_register.setdefault(qa.register, []).append(h)
    return {"version": version, "n": len(hits), "accuracy": sum(hits) / len(hits),
            **{f"accuracy_{k}": sum(v) / len(v) for k, v in sorted(by_register.items())}}
