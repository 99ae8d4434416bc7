"""The transformers + PEFT engine behind the same gRPC service (for places without vLLM), served
over TLS (switched on by settings), with AdapterAdmin on a port of its own (ADMIN_PORT) as the chart
runs it."""

from __future__ import annotations

import subprocess

import grpc
import pytest

from driftloop.retrainer.data import Example
from driftloop.retrainer.inference_client import InferenceClient
from driftloop.retrainer.prompts import PromptFormat
from driftloop.v1 import inference_pb2 as pb
from driftloop.v1 import inference_pb2_grpc
from tests.integration.inference.conftest import ADMIN_MD, ADMIN_TOKEN, inference_env, start_server

pytestmark = pytest.mark.integration


def test_hf_engine_serves_base_and_adapters_over_tls(tiny_model, kafka_broker, tmp_path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    env = inference_env(tiny_model, kafka_broker, tmp_path, DRIFTLOOP_INFERENCE_ENGINE="hf",
                        DRIFTLOOP_INFERENCE_FOLLOW_ROLLOUTS="false", DRIFTLOOP_INFERENCE_TLS_CERT_FILE=str(cert),
                        DRIFTLOOP_INFERENCE_TLS_KEY_FILE=str(key), DRIFTLOOP_INFERENCE_ADMIN_PORT="0")
    server = start_server("inference-hf", env, tmp_path / "hf.log", root_cert=cert.read_bytes())
    try:
        with pytest.raises(grpc.RpcError):  # plaintext clients are refused
            inference_pb2_grpc.InferenceStub(grpc.insecure_channel(server.grpc_address)).Generate(
                pb.GenerateRequest(prompt="x"), timeout=3)
        inf, admin = server.inference, server.admin
        assert server.admin_channel is not None
        with pytest.raises(grpc.RpcError) as info:  # not on the applications' port: a network policy can tell
            inference_pb2_grpc.AdapterAdminStub(server.channel).ListAdapters(pb.ListAdaptersRequest(),
                                                                             metadata=ADMIN_MD, timeout=10)
        assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED
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

        # The retrainer's client, as the chart wires it with TLS on: TLS on both listeners, the CA, the
        # admin address apart; its gate asks with the reserved source tag and the token.
        ready = server.process.ready
        client = InferenceClient(ready["grpc"], ADMIN_TOKEN, PromptFormat(), concurrency=2, tls=True, ca_file=cert,
                                 server_name="localhost", admin_address=ready["admin"])
        assert client.route("hf").stable_version == "v1"
        rows = [Example("When does route 4 leave?", ""), Example("How often is route 7?", "")]
        answers, latencies = client.answerer("hf")(rows)
        assert len(answers) == 2 and all(lat > 0 for lat in latencies)
    finally:
        server.channel.close()
        server.process.stop()
