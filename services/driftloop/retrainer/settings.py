"""Settings of the retrainer. Environment prefix ``DRIFTLOOP_RETRAINER_``; Kafka's own settings come
from ``DRIFTLOOP_KAFKA_``. The gate criteria are here, fixed before any training starts, and each
run stores the criteria it was judged by."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from driftloop.core.settings import KafkaSettings
from driftloop.retrainer.evaluate import GateCriteria
from driftloop.retrainer.prompts import PROMPT_TEMPLATE, PromptFormat
from driftloop.retrainer.train import TrainConfig


class RetrainerSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DRIFTLOOP_RETRAINER_", extra="forbid")

    group_id: str = Field("driftloop-retrainer", description="Kafka consumer group for triggers.")
    base_model: Path = Field(Path("artifacts/base-model"), description="Base model directory (HF format).")
    adapter_root: Path = Field(Path("artifacts/adapters"), description="Registry root, shared with inference.")
    state_dir: Path = Field(Path(".run/retrainer"), description="Trigger outcomes and run directories.")
    curated_data: Path | None = Field(None, description="JSONL of curated {question, answer, slice} rows.")
    labels_data: Path | None = Field(None, description="A review file annotators labelled (the `review-queue` "
                                     "command writes it): each line with a label is trained on as a correction.")
    review_max_mean_logprob: float = Field(-1.0, le=0, description="review-queue: answers whose mean token logprob "
                                           "is below this are queued as low-confidence.")
    replay_share: float = Field(0.5, ge=0, le=1, description="Rows drawn from older versions' training data, as a "
                                "share of the corrections.")
    replay_ratio: float = Field(6.0, ge=0, description="Most rows of unchanged behaviour (curated, confirmed, "
                                "replay) rehearsed per correction in a training batch: a few corrections get at least "
                                "1/(1+ratio) of each batch. More corrections get their share of the rows, up to "
                                "FRESH_SHARE_MAX. 0: batches drawn uniformly from all rows.")
    fresh_share_max: float = Field(0.5, gt=0, lt=1, description="Most share of a training batch drawn from "
                                   "corrections, however many there are: every step still rehearses unchanged "
                                   "behaviour (train.batch_share).")
    lookback_s: float = Field(7 * 86400, gt=0, description="How far back corrections are collected.")
    use_confirmed: bool = Field(True, description="Also train on answers riders rated positive since the episode "
                                "began (behaviour to keep).")
    stale_similarity: float = Field(0.95, gt=0, le=1, description="Staleness rule: a curated, replayed or "
                                    "confirmed row whose question is this similar (MiniLM cosine, same numbers) to a "
                                    "fresh correction's and whose answer differs is dropped as stale.")
    stale_rejected_similarity: float = Field(0.8, gt=0, le=1, description="Staleness rule: a row whose answer is "
                                             "the one riders rejected (and none confirmed) is stale at this looser "
                                             "similarity.")
    stale_rejected_support: int = Field(2, ge=1, description="Staleness rule: different correction questions that "
                                        "must have rejected a row's answer (a confusion happens on one phrasing).")
    min_corrections: int = Field(0, ge=0, description="Corrections wanted before training; the run waits for them.")
    collect_wait_s: float = Field(0.0, ge=0, description="Longest wait for min_corrections; then it trains on "
                                  "what there is.")
    collect_poll_s: float = Field(5.0, gt=0, description="Pause between readings of the feedback topics while a "
                                  "run waits for min_corrections.")
    min_train_rows: int = Field(10, ge=1, description="Fewest clean training rows a run trains on; with fewer (or "
                                "no validation or test rows) the run ends as failed.")
    prompt_template: str = Field(PROMPT_TEMPLATE, description="How questions are put to the model as a raw prompt "
                                 "(PROMPT_FORMAT template), and how a raw prompt in an event is read back.")
    prompt_format: Literal["template", "chat"] = Field(
        "template", description="How training rows and the gate put a question to the model: 'template' (a raw "
        "prompt, PROMPT_TEMPLATE) or 'chat' (the request's own system prompt and earlier turns, or SYSTEM_PROMPT "
        "for rows without them, then the question as the user turn, through the base model's chat template; the "
        "gate sends messages). Use 'chat' when applications send messages.")
    system_prompt: str = Field("", max_length=4000, description="The alias's system prompt in chat rows and gate "
                               "requests (PROMPT_FORMAT chat) for rows whose request had no conversation of its "
                               "own to keep (curated rows, raw-prompt traffic); empty: none.")
    max_seq_tokens: int = Field(128, ge=16, le=32768, description="Longest training row in tokens (prompt, "
                                "conversation and answer); longer rows are left out and counted "
                                "(training.json: rows_too_long).")
    run_attempts: int = Field(3, ge=1, description="Tries per trigger before it is recorded as failed; a retry "
                              "resumes from the registered version, it never trains twice.")
    release_policy: Literal["auto", "approve"] = Field(
        "auto", description="What a candidate that passed the gate does: 'auto' goes out as a canary; 'approve' "
        "waits (status awaiting_approval) for an operator's `approve` or `reject` command, the gate report in "
        "front of them (`pending` lists them).")
    rejection_retries: int = Field(2, ge=0, le=10, description="Attempts the retrainer raises itself after a gate "
                                   "rejection, per episode (retrainer/episodes.py); 0: a rejection ends the episode.")
    retry_min_new_corrections: int = Field(20, ge=1, description="New corrections an attempt after a rejection waits "
                                           "for (more than the rejected attempt trained on) before it trains.")
    retry_wait_s: float = Field(900.0, ge=0, description="Longest an attempt after a rejection waits for those "
                                "corrections; without them it ends as skipped and the episode with it.")
    retry_backoff_s: float = Field(15.0, ge=0, description="Pause between tries of a failed run.")
    max_trigger_age_s: float = Field(86400.0, gt=0, description="Older triggers are stale: dead-lettered, no run.")
    metrics_port: int = Field(9402, ge=0, description="Prometheus /metrics port.")
    host: str = Field("127.0.0.1", description="Metrics listen address.")

    # training (TrainConfig)
    lora_rank: int = Field(16, ge=1, le=64, description="LoRA rank.")
    lora_alpha: int = Field(32, ge=1, description="LoRA alpha.")
    lora_dropout: float = Field(0.05, ge=0, lt=1, description="LoRA dropout.")
    learning_rate: float = Field(2e-3, gt=0, description="AdamW learning rate.")
    batch_size: int = Field(32, ge=1, description="Rows per step.")
    max_steps: int = Field(400, ge=1, description="Step cap.")
    eval_every: int = Field(25, ge=1, description="Steps between validation-loss checks.")
    patience: int = Field(4, ge=1, description="Checks without improvement before early stopping.")
    seed: int = Field(0, description="Seed of sampling, initialisation and split-independent randomness.")
    augment_variants: int = Field(2, ge=0, le=8, description="Synthetic variants of each training row (case, typos, "
                                  "phrasing frames; retrainer/augment.py), so the adapter learns robustness; "
                                  "never of validation or test rows. 0: off.")
    train_threads: int = Field(0, ge=0, description="CPU threads for training (0: torch's default). Where a CPU "
                               "inference engine shares the machine, keep off its cores: its OpenMP threads spin.")

    # gate (GateCriteria), fixed before training
    gate_min_exact_match: float = Field(0.6, ge=0, le=1, description="Floor on held-out exact match.")
    gate_min_margin: float = Field(0.05, ge=0, le=1, description="Exact-match gain over the serving version.")
    gate_max_regression_drop: float = Field(0.02, ge=0, le=1, description="Allowed drop on the regression set.")
    gate_min_robustness_ratio: float = Field(0.7, ge=0, le=1, description="Worst perturbed EM / clean EM.")
    gate_max_slice_gap: float = Field(0.6, ge=0, le=1, description="Best minus worst slice exact match, within "
                                      "each slice key: the rows' slice (curated field or request tag 'slice') and "
                                      "the guessed language of the question (the monitor's lang= slices).")
    gate_min_slice_rows: int = Field(10, ge=1, description="Held-out rows a slice needs to be judged by the slice "
                                     "check (fewer: reported only).")
    gate_concurrency: int = Field(8, ge=1, description="Gate requests in flight at once (the engine batches them).")
    gate_max_tokens: int = Field(32, ge=1, description="Tokens each gate answer may generate (greedy).")
    gate_max_latency_p95_s: float = Field(2.0, gt=0, description="p95 generation latency through the engine.")

    # rollout
    inference_address: str = Field("127.0.0.1:50051", description="An inference replica (gate and checks).")
    inference_admin_address: str = Field("", description="Its AdapterAdmin listener, when inference serves it on a "
                                         "port of its own (ADMIN_PORT); empty: inference_address.")
    inference_admin_token: SecretStr | None = Field(None, description="Bearer token for AdapterAdmin (and the "
                                                    "gate's reserved source tag).")
    inference_tls: bool = Field(False, description="Dial inference over TLS (set whenever inference serves TLS).")
    inference_ca_file: Path | None = Field(None, description="PEM CA bundle that signed inference's certificate "
                                           "(default: the system's roots).")
    inference_server_name: str = Field("", description="Name to verify in inference's certificate, when it differs "
                                       "from the address's host.")
    canary_weight: float = Field(0.2, gt=0, lt=1, description="Share of traffic the canary gets.")
    canary_min_requests: int = Field(100, ge=1, description="Canary requests needed before a verdict.")
    canary_max_wait_s: float = Field(600.0, gt=0, description="Longest canary phase before a decision.")
    canary_max_negative_increase: float = Field(
        0.05, ge=0, le=1, description="Canary negative-feedback rate may exceed stable's by this much."
    )
    canary_max_error_increase: float = Field(0.02, ge=0, le=1, description="Canary error rate may exceed "
                                             "stable's by this much.")
    canary_poll_s: float = Field(3.0, gt=0, description="Pause between readings of the live signals during the "
                                 "canary.")
    rollout_apply_timeout_s: float = Field(120.0, gt=0, description="Longest wait for the replica to show a "
                                           "published rollout step; then the try fails (and is retried).")
    rollout_poll_s: float = Field(0.5, gt=0, description="Pause between reads of the route while waiting for a "
                                  "rollout step to apply.")
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)

    def train_config(self) -> TrainConfig:
        return TrainConfig(rank=self.lora_rank, alpha=self.lora_alpha, dropout=self.lora_dropout,
                           lr=self.learning_rate, batch_size=self.batch_size, max_steps=self.max_steps,
                           eval_every=self.eval_every, patience=self.patience, seed=self.seed,
                           prompt=self.prompt(), threads=self.train_threads,
                           fresh_share=1 / (1 + self.replay_ratio) if self.replay_ratio else 0.0,
                           fresh_share_max=self.fresh_share_max, max_len=self.max_seq_tokens)

    def gate_criteria(self) -> GateCriteria:
        return GateCriteria(self.gate_min_exact_match, self.gate_min_margin, self.gate_max_regression_drop,
                            self.gate_min_robustness_ratio, self.gate_max_slice_gap, self.gate_max_latency_p95_s,
                            self.gate_min_slice_rows)

    def prompt(self) -> PromptFormat:
        return PromptFormat(self.prompt_format, self.prompt_template, self.system_prompt)
