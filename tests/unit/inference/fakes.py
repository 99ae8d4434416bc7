"""Small fakes for the inference service's unit tests: an engine that answers "a b c" one word a
step, an event sink that keeps what it is given, and a harness wiring the real data plane to them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from prometheus_client import CollectorRegistry

from driftloop.core.metrics import InferenceMetrics
from driftloop.core.topics import PREDICTIONS
from driftloop.inference.adapters import AdapterRegistry
from driftloop.inference.dataplane import DataPlane
from driftloop.inference.engine.base import Engine, GenerationParams, LoraHandle, Step
from driftloop.inference.errors import InvalidRequest
from driftloop.inference.events import EventPublisher
from driftloop.inference.settings import InferenceSettings

S = InferenceSettings(model_name="fake", admin_token="t", default_deadline_s=5.0, replica="r1")


class FakeEngine(Engine):
    """Answers "a b c" one word a step; ``fail`` raises mid-stream, ``delay`` sleeps per step."""

    model_name, max_model_len, max_lora_rank, kind = "fake", 512, 8, "fake"

    def __init__(self) -> None:
        self.fail: Exception | None = None
        self.delay = 0.0

    async def start(self) -> None: ...
    async def shutdown(self) -> None: ...
    async def add_lora(self, lora: LoraHandle) -> None: ...
    async def remove_lora(self, lora: LoraHandle) -> None: ...

    def lora_target_modules(self) -> frozenset[str]:
        return frozenset({"q_proj"})

    def tokenize(self, prompt: str, add_special_tokens: bool = True) -> list[int]:
        return [0] * add_special_tokens + list(range(len(prompt.split())))

    def render_chat(self, messages) -> str:
        if any(m.role == "assistant" and m.content == "refuse" for m in messages):
            raise InvalidRequest("the chat template refused the conversation: roles must alternate")
        return "".join(f"{m.role}: {m.content}\n" for m in messages) + "assistant:"

    async def generate(self, request_id: str, prompt_token_ids: list[int], params: GenerationParams,
                       lora: LoraHandle | None) -> AsyncIterator[Step]:
        words = ["a", " b", " c"]
        for i, w in enumerate(words, 1):
            await asyncio.sleep(self.delay)
            if self.fail is not None and i == 2:
                raise self.fail
            yield Step(w, len(prompt_token_ids), i, -0.5 * i, "stop" if i == len(words) else None,
                       ((i, -0.5),) if params.logprobs else ())

    def token_texts(self, token_ids, before=()) -> list[str]:
        return [["a", " b", " c"][t - 1] for t in token_ids]


class FakeEmitter:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str, object]] = []

    def emit(self, topic, key: str, event) -> None:
        self.sent.append((topic.name, key, event))


class PlaneHarness:
    """The real data plane over the fake engine and event sink; a transport's tests call it."""

    def __init__(self, tmp_path) -> None:
        self.engine = FakeEngine()
        self.emitter = FakeEmitter()
        self.prom = CollectorRegistry()
        self.metrics = InferenceMetrics(self.prom, S.model_name)

        async def noop(v) -> None: ...
        self.registry = AdapterRegistry(tmp_path, 8, {"q_proj"}, noop, noop)
        self.plane = DataPlane(S, self.engine, self.registry, self.metrics, EventPublisher(self.emitter, S))

    def value(self, name: str, **labels: str) -> float:
        return self.prom.get_sample_value(name, labels) or 0.0

    def requests(self, code: str, method: str = "Generate") -> float:
        return self.value("driftloop_inference_requests_total", method=method, model="fake", adapter_alias="",
                          adapter_version="", code=code, transport="grpc")

    def events(self, topic: str = PREDICTIONS.name) -> list:
        return [e for t, _, e in self.emitter.sent if t == topic]
