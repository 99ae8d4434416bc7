"""The retrainer's gRPC client to an inference replica: the gate's answers through the real engine,
and the AdapterAdmin calls (route, load, unload) the gate and the rollout checks need."""

from __future__ import annotations

import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Protocol

import grpc

from driftloop.retrainer.data import Example
from driftloop.retrainer.evaluate import Answerer
from driftloop.retrainer.prompts import PromptFormat
from driftloop.v1 import inference_pb2, inference_pb2_grpc

GENERATE_TIMEOUT_S = 60  # RPC deadlines: transport limits, not policy
LIST_TIMEOUT_S = 10
LOAD_TIMEOUT_S = 120


def dial(target: str, tls: bool = False, ca_file: Path | None = None, server_name: str = "") -> grpc.Channel:
    """A channel to inference; over TLS whenever inference serves TLS (the CA defaults to the system's roots)."""
    if not tls:
        return grpc.insecure_channel(target)
    creds = grpc.ssl_channel_credentials(root_certificates=Path(ca_file).read_bytes() if ca_file else None)
    options = [("grpc.ssl_target_name_override", server_name)] if server_name else []
    return grpc.secure_channel(target, creds, options=options)


class RouteReader(Protocol):
    """What the rollout checks read from a replica: an alias's route (None: not routed)."""

    def route(self, alias: str) -> inference_pb2.AdapterRoute | None: ...


class InferenceClient:
    """The gate measures candidates through the real engine of a running inference replica."""

    def __init__(self, address: str, token: str | None, prompt: PromptFormat, concurrency: int = 8,
                 tls: bool = False, ca_file: Path | None = None, server_name: str = "",
                 admin_address: str = "", max_tokens: int = 32) -> None:
        self.concurrency = concurrency
        self.channel = dial(address, tls, ca_file, server_name)
        self.admin_channel = (dial(admin_address, tls, ca_file, server_name)
                              if admin_address and admin_address != address else self.channel)
        self.inference = inference_pb2_grpc.InferenceStub(self.channel)
        self.admin = inference_pb2_grpc.AdapterAdminStub(self.admin_channel)
        self.md = (("authorization", f"Bearer {token}"),) if token else ()
        self.prompt = prompt
        self.max_tokens = max_tokens

    def answerer(self, alias: str = "", version: str = "") -> Answerer:
        """Greedy answers through the engine, ``concurrency`` requests in flight (the engine batches
        them, as it does live traffic); each answer's own latency is measured."""
        def one(row: Example) -> tuple[str, float]:
            t0 = time.perf_counter()
            r = self.inference.Generate(inference_pb2.GenerateRequest(
                **self.prompt.request_fields(row.question, row.context), adapter_alias=alias, adapter_version=version,
                sampling=inference_pb2.SamplingParams(max_tokens=self.max_tokens, temperature=0.0),
                tags={"source": "retrainer-gate"}), metadata=self.md, timeout=GENERATE_TIMEOUT_S)  # reserved tag: token
            return r.text.strip(), time.perf_counter() - t0

        def answer(rows: Sequence[Example]) -> tuple[list[str], list[float]]:
            with ThreadPoolExecutor(self.concurrency) as pool:
                got = list(pool.map(one, rows))
            return [t for t, _ in got], [lat for _, lat in got]
        return answer

    def route(self, alias: str) -> inference_pb2.AdapterRoute | None:
        listed = self.admin.ListAdapters(inference_pb2.ListAdaptersRequest(adapter_alias=alias), metadata=self.md,
                                         timeout=LIST_TIMEOUT_S)
        return listed.routes[0] if listed.routes else None

    def load(self, alias: str, version: str, path: str) -> None:
        self.admin.LoadAdapter(inference_pb2.LoadAdapterRequest(adapter_alias=alias, version=version, path=path),
                               metadata=self.md, timeout=LOAD_TIMEOUT_S)

    def unload(self, alias: str, version: str) -> None:
        self.admin.UnloadAdapter(inference_pb2.UnloadAdapterRequest(adapter_alias=alias, version=version),
                                 metadata=self.md, timeout=LOAD_TIMEOUT_S)

    def close(self) -> None:
        if self.admin_channel is not self.channel:
            self.admin_channel.close()
        self.channel.close()
