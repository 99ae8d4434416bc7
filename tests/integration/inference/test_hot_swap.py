"""LoRA hot swap under load: alias switched between immutable versions while ≥20 clients send
≥200 requests; no request fails, each is served by a version routed at that moment, and old
versions leave the engine once drained."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import grpc
import pytest

from driftloop.core.ids import request_bucket
from driftloop.v1 import inference_pb2 as pb
from driftloop.v1 import inference_pb2_grpc
from tests.integration.inference.conftest import ADMIN_MD

pytestmark = pytest.mark.integration

CLIENTS = 24
PER_CLIENT = 10


async def _swap_under_load(address: str) -> None:
    alias = "swap"
    async with grpc.aio.insecure_channel(address) as channel:
        inf = inference_pb2_grpc.InferenceStub(channel)
        admin = inference_pb2_grpc.AdapterAdminStub(channel)
        await admin.LoadAdapter(pb.LoadAdapterRequest(adapter_alias=alias, version="v1", path="transit-qa/v1"),
                                metadata=ADMIN_MD, timeout=60)
        await admin.SetRoute(pb.SetRouteRequest(adapter_alias=alias, stable_version="v1"), metadata=ADMIN_MD)
        # Route history: (version, routed_from, routed_until) with bounds taken around each switch.
        history: list[list] = [["v1", float("-inf"), float("inf")]]
        results: list[tuple[float, float, str]] = []
        failures: list[BaseException] = []
        stop_swapping = asyncio.Event()

        async def client(i: int) -> None:
            for j in range(PER_CLIENT):
                t0 = time.monotonic()
                try:
                    r = await inf.Generate(pb.GenerateRequest(
                        request_id=f"swap-{i}-{j}", prompt=f"does route {i} stop at the park {j}",
                        adapter_alias=alias, sampling=pb.SamplingParams(max_tokens=8)), timeout=120)
                except grpc.aio.AioRpcError as exc:
                    failures.append(exc)
                    continue
                results.append((t0, time.monotonic(), r.adapter_version))

        async def swapper() -> None:
            for version in ("v2", "v3", "v4"):
                await asyncio.sleep(0.6)
                await admin.LoadAdapter(pb.LoadAdapterRequest(
                    adapter_alias=alias, version=version, path=f"transit-qa/{version}"), metadata=ADMIN_MD, timeout=60)
                before = time.monotonic()
                await admin.SetRoute(pb.SetRouteRequest(adapter_alias=alias, stable_version=version),
                                     metadata=ADMIN_MD, timeout=10)
                after = time.monotonic()
                history[-1][2] = after
                old = history[-1][0]
                history.append([version, before, float("inf")])
                # Unload the old version while traffic runs: it must drain, not fail requests.
                await admin.UnloadAdapter(pb.UnloadAdapterRequest(adapter_alias=alias, version=old),
                                          metadata=ADMIN_MD, timeout=120)
            stop_swapping.set()

        await asyncio.gather(swapper(), *(client(i) for i in range(CLIENTS)))
        assert not failures, failures[:3]
        assert len(results) == CLIENTS * PER_CLIENT
        switches = len(history) - 1
        assert switches >= 3
        for t0, t1, version in results:
            allowed = {v for v, start, end in history if start <= t1 and end >= t0}
            assert version in allowed, (version, t0, t1, history)
        served = Counter(v for _, _, v in results)
        assert len(served) >= 2, served  # the swaps happened under traffic
        listed = await admin.ListAdapters(pb.ListAdaptersRequest(adapter_alias=alias), metadata=ADMIN_MD)
        assert [v.version for v in listed.versions] == ["v4"], listed
        assert listed.routes[0].stable_version == "v4" and listed.versions[0].in_flight == 0


def test_hot_swap_under_load(inference_server) -> None:
    asyncio.run(_swap_under_load(inference_server.grpc_address))


def test_canary_split_is_deterministic_by_request_id(inference_server) -> None:
    admin, inf = inference_server.admin, inference_server.inference
    alias = "canary"
    for v in ("v1", "v2"):
        admin.LoadAdapter(pb.LoadAdapterRequest(adapter_alias=alias, version=v, path=f"transit-qa/{v}"),
                          metadata=ADMIN_MD, timeout=60)
    admin.SetRoute(pb.SetRouteRequest(adapter_alias=alias, stable_version="v1", canary_version="v2",
                                      canary_weight=0.3), metadata=ADMIN_MD, timeout=10)
    served = Counter()
    for i in range(60):
        rid = f"canary-{i}"
        r = inf.Generate(pb.GenerateRequest(request_id=rid, prompt="the bus", adapter_alias=alias,
                                            sampling=pb.SamplingParams(max_tokens=2)), timeout=60)
        expected = "v2" if request_bucket(rid) < 0.3 else "v1"
        assert r.adapter_version == expected
        served[r.adapter_version] += 1
        again = inf.Generate(pb.GenerateRequest(request_id=rid, prompt="the bus", adapter_alias=alias,
                                                sampling=pb.SamplingParams(max_tokens=2)), timeout=60)
        assert again.adapter_version == r.adapter_version
    assert served["v2"] > 5 and served["v1"] > 25, served
    pinned = inf.Generate(pb.GenerateRequest(prompt="the bus", adapter_alias=alias, adapter_version="v2",
                                             sampling=pb.SamplingParams(max_tokens=2)), timeout=60)
    assert pinned.adapter_version == "v2"
