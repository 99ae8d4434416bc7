"""The transformers + PEFT engine behind the same gRPC service (for places without vLLM)."""

from __future__ import annotations

import grpc
import pytest

from driftloop.v1 import inference_pb2 as pb
from tests.integration.inference.conftest import ADMIN_MD, inference_env, start_server

pytestmark = pytest.mark.integration


def test_hf_engine_serves_base_and_adapters(tiny_model, kafka_broker, tmp_path) -> None:
    env = inference_env(tiny_model, kafka_broker, tmp_path, DRIFTLOOP_INFERENCE_ENGINE="hf",
                        DRIFTLOOP_INFERENCE_FOLLOW_ROLLOUTS="false")
    server = start_server("inference-hf", env, tmp_path / "hf.log")
    try:
        inf, admin = server.inference, server.admin
        greedy = pb.SamplingParams(max_tokens=8, temperature=0.0)
        base = inf.Generate(pb.GenerateRequest(prompt="the bus leaves", sampling=greedy), timeout=60)
        assert base.text and base.usage.completion_tokens > 0 and base.usage.mean_token_logprob < 0
        chunks = list(inf.GenerateStream(pb.GenerateRequest(prompt="the bus leaves", sampling=greedy), timeout=60))
        assert "".join(c.text_delta for c in chunks) == base.text and chunks[-1].finish_reason

        admin.LoadAdapter(pb.LoadAdapterRequest(adapter_alias="hf", version="v1", path="transit-qa/v1"),
                          metadata=ADMIN_MD, timeout=60)
        admin.SetRoute(pb.SetRouteRequest(adapter_alias="hf", stable_version="v1"), metadata=ADMIN_MD, timeout=10)
        tuned = inf.Generate(pb.GenerateRequest(prompt="the bus leaves", adapter_alias="hf", sampling=greedy),
                             timeout=60)
        assert tuned.adapter_version == "v1" and tuned.text != base.text
        again = inf.Generate(pb.GenerateRequest(prompt="the bus leaves", sampling=greedy), timeout=60)
        assert again.text == base.text  # base requests bypass the adapter

        with pytest.raises(grpc.RpcError) as info:
            admin.LoadAdapter(pb.LoadAdapterRequest(adapter_alias="hf", version="bad", path="bad/rank-too-large"),
                              metadata=ADMIN_MD, timeout=60)
        assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    finally:
        server.channel.close()
        server.process.stop()
