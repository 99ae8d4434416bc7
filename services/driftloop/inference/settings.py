"""Settings of the inference service. Environment prefix ``DRIFTLOOP_INFERENCE_``; Kafka's own
settings come from ``DRIFTLOOP_KAFKA_`` (see driftloop.core.settings)."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from driftloop.core.settings import KafkaSettings


class InferenceSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DRIFTLOOP_INFERENCE_", extra="forbid")

    # -- model and engine ---------------------------------------------------------------------
    model_path: Path = Field(Path("artifacts/base-model"), description="Base model directory (HF format).")
    model_name: str = Field("", description="Name reported in responses and events; default: the dir name.")
    engine: Literal["vllm", "hf"] = Field(
        "vllm", description="'vllm' (AsyncLLM, in-process) or 'hf' (transformers + PEFT, no vLLM needed)."
    )
    dtype: Literal["float32", "bfloat16", "float16", "auto"] = Field("float32", description="Weights dtype.")
    max_model_len: int = Field(512, ge=16, description="Context length (prompt + completion tokens).")
    max_num_seqs: int | None = Field(None, ge=1, description="Sequences the engine batches at once (unset: vLLM's "
                                     "own default for the hardware, as `vllm serve` picks it: 128 on CPU).")
    max_loras: int = Field(4, ge=1, description="LoRA adapters usable in one batch.")
    max_cpu_loras: int = Field(8, ge=1, description="LoRA adapters kept loaded in the engine.")
    max_lora_rank: int = Field(16, ge=1, description="Largest adapter rank accepted.")
    gpu_memory_utilization: float = Field(
        0.1, gt=0, le=1, description="Share of accelerator memory (of RAM on CPU builds) vLLM may reserve."
    )
    kv_cache_space_gib: int = Field(1, ge=1, description="KV cache size on CPU builds (VLLM_CPU_KVCACHE_SPACE).")
    enforce_eager: bool = Field(False, description="Disable CUDA graphs / compilation: faster start on GPUs, "
                                "slower decoding. vLLM's default (false) like `vllm serve`; on the CPU build with "
                                "LoRA vLLM runs eager either way (measured: same start-up and throughput).")

    # -- request limits -----------------------------------------------------------------------------
    max_prompt_chars: int = Field(4000, ge=1, description="Longest prompt accepted, in characters.")
    max_tokens_limit: int = Field(256, ge=1, description="Largest max_tokens a request may ask for.")
    default_max_tokens: int = Field(64, ge=1, description="max_tokens when a request gives none.")
    default_temperature: float = Field(0.0, ge=0, le=2, description="Temperature when a request gives none.")
    default_deadline_s: float = Field(60.0, gt=0, description="Deadline applied when a client sets none.")

    # -- adapters -----------------------------------------------------------------------------------
    adapter_root: Path = Field(
        Path("artifacts/adapters"), description="Every adapter path must resolve inside this directory."
    )
    follow_rollouts: bool = Field(
        True, description="Follow the compacted adapter-rollouts topic and converge to its state."
    )
    rollout_catch_up_s: float = Field(10.0, ge=0, description="At start, how long to wait for the rollout topic "
                                      "to be applied before serving what is loaded (Kafka may be down).")

    # -- server -------------------------------------------------------------------------------------
    host: str = Field("127.0.0.1", description="gRPC listen address.")
    port: int = Field(50051, ge=0, description="gRPC port (0 picks a free one).")
    metrics_port: int = Field(9400, ge=0, description="Prometheus /metrics port (0 picks a free one).")
    openai_http: bool = Field(True, description="Serve the OpenAI-compatible HTTP API (/v1/chat/completions, "
                              "/v1/completions, /v1/models, /v1/feedback) on http_port, beside gRPC.")
    http_port: int = Field(8000, ge=0, description="Port of the OpenAI-compatible HTTP listener (0 picks a free "
                           "one); same host, TLS and admin token as gRPC.")
    admin_port: int | None = Field(None, ge=0, description="Serve AdapterAdmin on this port only (0 picks a free "
                                   "one), so a network policy can keep applications off it; unset: on `port`.")
    admin_token: SecretStr | None = Field(None, description="Bearer token required by AdapterAdmin calls and by "
                                          "reserved request tags (source). Required unless "
                                          "allow_unauthenticated_admin is set.")
    allow_unauthenticated_admin: bool = Field(False, description="Run without an admin token: AdapterAdmin and "
                                              "reserved tags open to every caller. For local experiments only.")
    max_concurrent_rpcs: int = Field(256, ge=1, description="RPCs served at once; more are refused with "
                                     "RESOURCE_EXHAUSTED.")
    tls_cert_file: Path | None = Field(None, description="PEM certificate; TLS is on when cert and key are set.")
    tls_key_file: Path | None = Field(None, description="PEM private key.")
    replica: str = Field(default_factory=socket.gethostname, description="This replica's name in events.")
    grace_period_s: float = Field(20.0, ge=0, description="Shutdown grace for in-flight calls.")

    # -- events ---------------------------------------------------------------------------------------
    emit_events: bool = Field(True, description="Send PredictionEvent/FeedbackEvent to Kafka.")
    spool_dir: Path = Field(Path(".run/inference/spool"), description="On-disk event spool (sqlite).")
    spool_max_bytes: int = Field(
        256 * 1024 * 1024, ge=1024, description="Spool bound; beyond it the oldest events are dropped and counted."
    )
    spool_batch: int = Field(500, ge=1, description="Events shipped per Kafka round trip.")
    spool_ship_interval_ms: int = Field(
        250, ge=0, le=10_000, description="After shipping less than a full batch, how long the shipper lets events "
        "gather (on disk) before the next Kafka round trip: fewer, larger produce requests (less CPU per event) "
        "for that much more delay to Kafka. 0: ship as soon as an event is spooled.")
    spool_drain_s: float = Field(30.0, ge=0, description="At shutdown, how long undelivered events are given to "
                                 "reach Kafka.")
    spool_ephemeral: bool = Field(False, description="The spool does not outlive the pod (an emptyDir): events still "
                                  "undelivered after the drain are counted as lost (reason shutdown).")
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)

    @model_validator(mode="after")
    def _check(self) -> InferenceSettings:
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("set both tls_cert_file and tls_key_file, or neither")
        if self.default_max_tokens > self.max_tokens_limit:
            raise ValueError("default_max_tokens exceeds max_tokens_limit")
        if self.admin_token is None and not self.allow_unauthenticated_admin:
            raise ValueError("set admin_token (DRIFTLOOP_INFERENCE_ADMIN_TOKEN), or allow_unauthenticated_admin=true "
                             "to leave AdapterAdmin open to every caller")
        if not self.model_name:
            self.model_name = Path(self.model_path).name
        return self
