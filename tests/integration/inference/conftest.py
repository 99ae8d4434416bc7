"""A real inference service (vLLM engine, subprocess) on a tiny random Llama: its files and how to
start it. The session's one instance (fixtures ``tiny_model`` and ``inference_server``) lives in
tests/integration/conftest.py, so the inference and the hostile-input suites share one engine."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import grpc

from driftloop.local.kafka import LocalKafka, free_port
from driftloop.local.procs import ServiceProcess
from driftloop.local.tiny_model import build, make_lora
from driftloop.v1 import inference_pb2_grpc

ADMIN_TOKEN = "test-admin-token"
ADMIN_MD = (("authorization", f"Bearer {ADMIN_TOKEN}"),)


@dataclass
class ModelFiles:
    base: Path
    adapter_root: Path


def build_model_files(root: Path) -> ModelFiles:
    """The tiny base model, four good adapters of transit-qa, and broken adapters that must be
    refused before the engine sees them."""
    base = build(root / "base")
    adapters = root / "adapters"
    for i in (1, 2, 3, 4):
        make_lora(base, adapters / "transit-qa" / f"v{i}", seed=i)
    good = adapters / "transit-qa" / "v1"
    bad = adapters / "bad"
    (bad / "no-weights").mkdir(parents=True)
    shutil.copy(good / "adapter_config.json", bad / "no-weights")
    for name, patch in {"rank-too-large": {"r": 64}, "wrong-modules": {"target_modules": ["fc_in"]},
                        "not-lora": {"peft_type": "PREFIX_TUNING"}}.items():
        shutil.copytree(good, bad / name)
        cfg = json.loads((good / "adapter_config.json").read_text())
        cfg.update(patch)
        (bad / name / "adapter_config.json").write_text(json.dumps(cfg))
    shutil.copytree(good, bad / "garbage-config")
    (bad / "garbage-config" / "adapter_config.json").write_text("{not json")
    shutil.copytree(good, bad / "garbage-weights")
    (bad / "garbage-weights" / "adapter_model.safetensors").write_bytes(b"\x00" * 64)
    return ModelFiles(base, adapters)


def inference_env(model: ModelFiles, broker: LocalKafka, state: Path, **extra: str) -> dict[str, str]:
    return {
        "DRIFTLOOP_KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap,
        "DRIFTLOOP_INFERENCE_MODEL_PATH": str(model.base),
        "DRIFTLOOP_INFERENCE_MODEL_NAME": "tiny-llama",
        "DRIFTLOOP_INFERENCE_ADAPTER_ROOT": str(model.adapter_root),
        "DRIFTLOOP_INFERENCE_SPOOL_DIR": str(state / "spool"),
        "DRIFTLOOP_INFERENCE_PORT": str(free_port()),
        "DRIFTLOOP_INFERENCE_METRICS_PORT": str(free_port()),
        "DRIFTLOOP_INFERENCE_HTTP_PORT": str(free_port()),
        "DRIFTLOOP_INFERENCE_ADMIN_TOKEN": ADMIN_TOKEN,
        "DRIFTLOOP_INFERENCE_MAX_TOKENS_LIMIT": "64",
        "DRIFTLOOP_INFERENCE_DEFAULT_MAX_TOKENS": "8",
        "DRIFTLOOP_INFERENCE_MAX_PROMPT_CHARS": "2000",
        **extra,
    }


@dataclass
class Server:
    process: ServiceProcess
    grpc_address: str
    metrics_url: str
    channel: grpc.Channel
    admin_channel: grpc.Channel | None = None  # when AdapterAdmin has its own port (ADMIN_PORT)
    http_base: str = ""  # the OpenAI-compatible listener, e.g. http://127.0.0.1:8000/v1

    @property
    def inference(self) -> inference_pb2_grpc.InferenceStub:
        return inference_pb2_grpc.InferenceStub(self.channel)

    @property
    def admin(self) -> inference_pb2_grpc.AdapterAdminStub:
        return inference_pb2_grpc.AdapterAdminStub(self.admin_channel or self.channel)


def start_server(name: str, env: dict[str, str], log: Path, root_cert: bytes | None = None) -> Server:
    proc = ServiceProcess(name, "driftloop.inference", env, log)
    ready = proc.wait_ready(timeout=240)
    def dial(address: str) -> grpc.Channel:
        if root_cert is None:
            return grpc.insecure_channel(address)
        return grpc.secure_channel(address, grpc.ssl_channel_credentials(root_certificates=root_cert))

    channel = dial(ready["grpc"])
    grpc.channel_ready_future(channel).result(timeout=30)
    admin = dial(ready["admin"]) if "admin" in ready else None
    scheme = "http" if root_cert is None else "https"
    http_base = f"{scheme}://{ready['http']}/v1" if "http" in ready else ""
    return Server(proc, ready["grpc"], f"http://{ready['metrics']}/metrics", channel, admin, http_base)
