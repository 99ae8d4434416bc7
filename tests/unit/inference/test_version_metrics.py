"""The request metrics by adapter version: each request counted under the version that served it,
and the label bounded by what is loaded (an unloaded version's series are removed by the registry's
on_change hook, server.publish_adapter_metrics). The real data plane, registry and metrics over the
fake engine (tests/unit/inference/fakes.py)."""

from __future__ import annotations

import asyncio
import functools
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from driftloop.core.ids import request_bucket
from driftloop.inference.dataplane import GenerationRequest
from driftloop.inference.errors import NotFound
from driftloop.inference.server import publish_adapter_metrics
from tests.unit.inference.fakes import PlaneHarness

REQUEST_METRICS = ("driftloop_inference_requests_total", "driftloop_inference_request_duration_seconds",
                   "driftloop_inference_time_to_first_token_seconds", "driftloop_inference_tokens_total")


def write_adapter(d: Path) -> None:
    d.mkdir(parents=True)
    (d / "adapter_config.json").write_text(json.dumps(
        {"peft_type": "LORA", "r": 2, "lora_alpha": 4, "target_modules": ["q_proj"]}))
    prefix = "base_model.model.model.layers.0.self_attn.q_proj"
    save_file({f"{prefix}.lora_A.weight": torch.zeros(2, 8), f"{prefix}.lora_B.weight": torch.zeros(8, 2)},
              str(d / "adapter_model.safetensors"))


class Harness(PlaneHarness):
    """The plane harness with the server's on_change hook on its registry."""

    def __init__(self, tmp_path: Path) -> None:
        super().__init__(tmp_path)
        self.root = tmp_path
        self.registry.on_change = functools.partial(publish_adapter_metrics, self.registry, self.metrics)

    async def load(self, alias: str, version: str) -> None:
        write_adapter(self.root / alias / version)
        await self.registry.load(alias, version, f"{alias}/{version}")

    async def ask(self, alias: str = "", version: str = "", stream: bool = False, request_id: str = "") -> str:
        out = await self.plane.generate(GenerationRequest(prompt="when is the bus", adapter_alias=alias,
                                                          adapter_version=version, stream=stream,
                                                          request_id=request_id))
        return out.adapter_version

    def series(self) -> list[dict[str, str]]:
        """The label sets of every sample of the four request metrics."""
        return [s.labels for fam in self.prom.collect() if fam.name.removesuffix("_total") in
                {m.removesuffix("_total") for m in REQUEST_METRICS} for s in fam.samples]

    def versions(self) -> set[tuple[str, str]]:
        return {(s["adapter_alias"], s["adapter_version"]) for s in self.series() if s["adapter_version"]}


@pytest.fixture
def h(tmp_path) -> Harness:
    return Harness(tmp_path)


def test_canary_and_stable_are_counted_apart(h: Harness) -> None:
    async def scenario() -> dict[str, int]:
        await h.load("qa", "v1")
        await h.load("qa", "v2")
        h.registry.set_route("qa", "v1", "v2", 0.5)
        served = {"v1": 0, "v2": 0}
        for i in range(40):
            served[await h.ask("qa", stream=i % 2 == 0, request_id=f"r-{i}")] += 1
        return served

    served = asyncio.run(scenario())
    canary = sum(request_bucket(f"r-{i}") < 0.5 for i in range(40))
    assert served == {"v1": 40 - canary, "v2": canary} and 0 < canary < 40
    for version, n in served.items():
        labels = {"model": "fake", "adapter_alias": "qa", "adapter_version": version}
        count = sum(h.value("driftloop_inference_requests_total", method=m, code="OK", transport="grpc", **labels)
                    for m in ("Generate", "GenerateStream"))
        latency = sum(h.value("driftloop_inference_request_duration_seconds_count", method=m, transport="grpc",
                              **labels) for m in ("Generate", "GenerateStream"))
        assert count == latency == n
        assert h.value("driftloop_inference_tokens_total", kind="completion", **labels) == 3 * n
        assert h.value("driftloop_inference_time_to_first_token_seconds_count", **labels) > 0  # half streamed


def test_base_model_pinned_versions_and_refusals(h: Harness) -> None:
    async def scenario() -> None:
        await h.load("qa", "v1")
        await h.load("faq", "v7")  # loaded, never routed: reachable by pinning only
        h.registry.set_route("qa", "v1")
        await h.ask()
        await h.ask("faq", "v7")
        for alias, version in (("nope", ""), ("qa", "v9")):
            with pytest.raises(NotFound):
                await h.ask(alias, version)

    asyncio.run(scenario())

    def requests(alias: str, version: str, code: str) -> float:
        return h.value("driftloop_inference_requests_total", method="Generate", model="fake", adapter_alias=alias,
                       adapter_version=version, code=code, transport="grpc")

    assert requests("", "", "OK") == 1  # the base model
    assert requests("faq", "v7", "OK") == 1  # its alias is named: one of its loaded versions served it
    assert requests("unknown", "", "NOT_FOUND") == 1  # an alias nobody routed stays out of the labels
    assert requests("qa", "", "NOT_FOUND") == 1  # a pinned version that is not loaded: no version label
    assert h.versions() == {("faq", "v7")}


def test_unloaded_versions_lose_their_series_and_the_label_stays_bounded(h: Harness) -> None:
    """Fifty versions rolled out one after the other (each the canary, then stable, then unloaded):
    only the loaded ones ever have series, and the series count does not grow with the history."""
    counts = []

    async def scenario() -> None:
        await h.load("qa", "v0")
        h.registry.set_route("qa", "v0")
        for n in range(1, 51):
            old, new = f"v{n - 1}", f"v{n}"
            await h.load("qa", new)
            h.registry.set_route("qa", old, new, 0.5)
            for version in (old, new):  # pinned: every round writes the same series for both
                for stream in (False, True):
                    assert await h.ask("qa", version, stream=stream) == version
            with pytest.raises(NotFound):
                await h.ask("qa", "v999")
            assert h.versions() == {("qa", old), ("qa", new)}
            h.registry.set_route("qa", new)
            await h.registry.unload("qa", old)
            assert h.versions() == {("qa", v.version) for v in h.registry.versions()} == {("qa", new)}
            counts.append(len(h.series()))

    asyncio.run(scenario())
    assert len(set(counts)) == 1  # one version's worth (and the refusals'), whatever the history
    assert h.value("driftloop_inference_requests_total", method="Generate", model="fake", adapter_alias="qa",
                   adapter_version="", code="NOT_FOUND", transport="grpc") == 50  # not a version's: kept


def test_a_request_in_flight_is_counted_before_its_version_goes(h: Harness) -> None:
    """Unloading waits for the version's requests; the last one's record comes before the removal, so
    nothing is written under a version after its series are gone."""
    h.engine.delay = 0.02

    async def scenario() -> None:
        await h.load("qa", "v1")
        await h.load("qa", "v2")
        h.registry.set_route("qa", "v1")
        slow = asyncio.ensure_future(h.ask("qa", stream=True))
        await asyncio.sleep(0.01)  # acquired v1, generating
        h.registry.set_route("qa", "v2")
        unload = asyncio.ensure_future(h.registry.unload("qa", "v1"))
        await asyncio.sleep(0.01)
        assert ("qa", "v1") in {(v.alias, v.version) for v in h.registry.versions()}  # draining
        assert await slow == "v1"
        await unload
        await h.ask("qa")

    asyncio.run(scenario())
    assert h.versions() == {("qa", "v2")}
    assert all(s["adapter_version"] != "v1" for s in h.series())


def test_keep_versions_leaves_the_base_model_and_other_aliases(h: Harness) -> None:
    m = h.metrics
    for alias, version in (("", ""), ("unknown", ""), ("qa", "v1"), ("qa", "v2"), ("faq", "v1")):
        m.served_by(alias, version).requests("Generate", "OK", "grpc").inc()
        m.served_by(alias, version).tokens("prompt").inc(3)
    m.keep_versions([("qa", "v2"), ("faq", "v9")])
    assert h.versions() == {("qa", "v2")}
    assert {(s["adapter_alias"], s["adapter_version"]) for s in h.series()} == {("", ""), ("unknown", ""),
                                                                                ("qa", "v2")}
    m.served_by("qa", "v1").requests("Generate", "OK", "grpc").inc()  # loaded again later: starts afresh
    assert h.value("driftloop_inference_requests_total", method="Generate", model="fake", adapter_alias="qa",
                   adapter_version="v1", code="OK", transport="grpc") == 1
