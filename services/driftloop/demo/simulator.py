"""Riders: application traffic from people who know the truth. Each rider asks a question,
compares the answer with the world as it is, and (for a share of answers) sends feedback: a thumbs
up, or a thumbs down with the correct answer for a share of the wrong ones.

They put a question to the model by a ``retrainer.prompts.PromptFormat`` (the retrainer's own rule):
in ``chat`` format as a chat app does -- the app's system prompt (if any), then the rider's question
as the user turn -- over gRPC (``messages``) or, for ``http_share`` of them, over the
OpenAI-compatible HTTP endpoint with the ``openai`` SDK (feedback on ``/v1/feedback``); in
``template`` format as raw prompts over gRPC."""

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
from driftloop.retrainer.data import Example
from driftloop.retrainer.evaluate import exact_match, row_slices
from driftloop.retrainer.prompts import PromptFormat
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
    by_transport: Counter = field(default_factory=Counter)  # answered requests: grpc, http
    correct_by_transport: Counter = field(default_factory=Counter)

    @property
    def accuracy(self) -> float:
        return self.correct / self.requests if self.requests else 0.0

    def to_dict(self) -> dict:
        return {"requests": self.requests, "correct": self.correct, "errors": self.errors, "feedback": self.feedback,
                "negative": self.negative, "corrections": self.corrections, "accuracy": self.accuracy,
                "by_version": dict(self.by_version), "by_transport": dict(self.by_transport),
                "correct_by_transport": dict(self.correct_by_transport)}


RAW = PromptFormat()  # raw prompts through the prompt template


@dataclass(frozen=True)
class Answer:
    request_id: str
    text: str
    version: str


class Riders:
    def __init__(self, channel: grpc.Channel, alias: str, seed: int, concurrency: int = 4,
                 feedback_share: float = 0.6, correction_share: float = 0.7, prompt: PromptFormat = RAW,
                 http_base: str = "", http_share: float = 0.0) -> None:
        self.stub = inference_pb2_grpc.InferenceStub(channel)
        self.alias = alias
        self.rng = random.Random(seed)
        self.concurrency = concurrency
        self.feedback_share = feedback_share
        self.correction_share = correction_share
        self.prompt = prompt
        self.http_share = http_share if http_base and prompt.kind == "chat" else 0.0
        self.http = None
        if self.http_share:
            import openai

            self.http = openai.OpenAI(base_url=http_base, api_key="riders-app", max_retries=0, timeout=60)
        self._lock = threading.Lock()
        self.log: list[tuple[float, str, str, bool]] = []  # (time, phase, version, correct) per answer

    def _grpc(self, qa: world.QA, tags: dict[str, str]) -> Answer:
        r = self.stub.Generate(inference_pb2.GenerateRequest(**self.prompt.request_fields(qa.question),
                                                             adapter_alias=self.alias, tags=tags), timeout=60)
        return Answer(r.request_id, r.text, r.adapter_version)

    def _http(self, qa: world.QA, tags: dict[str, str]) -> Answer:
        messages = [{"role": m.role, "content": m.content} for m in self.prompt.messages(qa.question)]
        r = self.http.chat.completions.create(model=self.alias, messages=messages, metadata=tags)
        return Answer(r.id, r.choices[0].message.content or "", r.model.partition("@")[2])

    def _feedback(self, transport: str, request_id: str, good: bool, correction: str) -> bool:
        try:
            if transport == "http":
                self.http.post("/feedback", body={"id": request_id, "rating": "positive" if good else "negative",
                                                  "correction": correction}, cast_to=object)
            else:
                self.stub.SubmitFeedback(inference_pb2.SubmitFeedbackRequest(
                    request_id=request_id, rating=events_pb2.RATING_POSITIVE if good else events_pb2.RATING_NEGATIVE,
                    correction=correction), timeout=10)
        except Exception:  # noqa: BLE001 - a rider whose feedback fails just moves on (counted as unrated)
            return False
        return True

    def _ask(self, qa: world.QA, phase: str, stats: TrafficStats) -> None:
        with self._lock:  # one seeded stream of decisions, whatever the thread interleaving
            rate, correct_it = self.rng.random() < self.feedback_share, self.rng.random() < self.correction_share
            transport = "http" if self.rng.random() < self.http_share else "grpc"
        tags = {"slice": qa.kind, "phase": phase}
        try:
            r = self._http(qa, tags) if transport == "http" else self._grpc(qa, tags)
        except Exception:  # noqa: BLE001 - grpc.RpcError or openai.APIError: the request failed
            with self._lock:
                stats.requests += 1
                stats.errors += 1
            return
        good = exact_match(r.text, qa.answer)
        correction = qa.answer if (not good and correct_it) else ""
        rated = rate and self._feedback(transport, r.request_id, good, correction)
        with self._lock:
            self.log.append((time.time(), phase, r.version, good))
            stats.requests += 1
            stats.correct += good
            stats.by_version[r.version] += 1
            stats.by_transport[transport] += 1
            stats.correct_by_transport[transport] += good
            if rated:
                stats.feedback += 1
                stats.negative += not good
                stats.corrections += bool(correction)

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
             concurrency: int = 4, metadata: Sequence[tuple[str, str]] = (),
             prompt: PromptFormat = RAW) -> dict:
    """Exact match of one pinned version on ``questions``, asked as the riders ask (``prompt``); no
    feedback; tagged as evaluation traffic, a reserved tag: ``metadata`` carries the admin token."""
    stub = inference_pb2_grpc.InferenceStub(channel)

    def ask(qa: world.QA) -> bool:
        r = stub.Generate(inference_pb2.GenerateRequest(
            **prompt.request_fields(qa.question), adapter_alias=alias, adapter_version=version,
            sampling=inference_pb2.SamplingParams(temperature=0.0), tags={"source": "evaluation"}),
            metadata=metadata, timeout=60)
        return exact_match(r.text, qa.answer)

    with ThreadPoolExecutor(concurrency) as pool:
        hits = list(pool.map(ask, questions))
    by_register: dict[str, list[bool]] = {}
    by_slice: dict[str, list[bool]] = {}  # the gate's and the monitor's slice labels (core/slices.py)
    for qa, h in zip(questions, hits, strict=True):
        by_register.setdefault(qa.register, []).append(h)
        for label in row_slices(Example(qa.question, qa.answer, slice=qa.kind)):
            by_slice.setdefault(label, []).append(h)
    return {"version": version, "n": len(hits), "accuracy": sum(hits) / len(hits),
            **{f"accuracy_{k}": sum(v) / len(v) for k, v in sorted(by_register.items())},
            "by_slice": {k: {"n": len(v), "accuracy": sum(v) / len(v)} for k, v in sorted(by_slice.items())}}
