"""The engine-only logprobs benchmark's summary (bench/logprobs.py): ratios within a round, CPU per request."""

from __future__ import annotations

from bench.load import Result
from bench.logprobs import per_1k_tokens, profile_table, summary
from bench.pyspy import parse, samples_by_category


def result(key: str, round_: int, tokens: int, client_s: float = 0.1) -> Result:
    return Result(key, 8, 10, tokens, 1.0, 1.0, 2.0, 0, server_cpu_s=client_s, round=round_)


def test_summary_pairs_each_variant_with_the_same_rounds_baseline() -> None:
    # round 1 ran twice as fast for every variant: its ratios are the same as round 0's
    results = [result("none", 0, 100), result("zero", 0, 90), result("flat", 0, 95),
               result("none", 1, 200), result("zero", 1, 160), result("flat", 1, 200)]
    (line,) = summary(results, [(8, 10)])
    assert "zero 0.85 (0.80–0.90)" in line
    assert "flat 0.97 (0.95–1.00)" in line
    # CPU per request: 0.1 s over 10 requests = 10 ms in this process (vLLM's client)
    assert "none: 150 tok/s, p99 2 ms, client 10.00 ms CPU/request" in line


def test_samples_become_ms_of_a_thread_per_1000_tokens() -> None:
    # 50 samples at 50 Hz = 1 s of a thread, while 2,000 tokens came out: 500 ms per 1,000 tokens
    assert per_1k_tokens({"model": 50, "logprobs": 5}, tokens=2000, rate=50) == {"model": 500.0, "logprobs": 50.0}


def test_vllm_stacks_go_to_the_logprobs_stages_first() -> None:
    worker = "thread (1): MainThread;worker_busy_loop (vllm/v1/executor/multiproc_executor.py:800)"
    client = "thread (2): MainThread;_run_once (asyncio/base_events.py:1)"
    raw = [
        f"{worker};execute_model (vllm/v1/worker/gpu_model_runner.py:10);"
        "_model_forward (vllm/v1/worker/gpu_model_runner.py:20);forward (vllm/model_executor/models/llama.py:1) 40",
        f"{worker};sample_tokens (vllm/v1/worker/gpu_model_runner.py:30);forward (vllm/v1/sample/sampler.py:5);"
        "gather_logprobs (vllm/v1/sample/sampler.py:9) 6",
        f"{worker};sample_tokens (vllm/v1/worker/gpu_model_runner.py:30);forward (vllm/v1/sample/sampler.py:5) 2",
        f"{worker};dequeue (vllm/distributed/device_communicators/shm_broadcast.py:1);"
        "MessageQueue.acquire_read (vllm/distributed/device_communicators/shm_broadcast.py:2) 30",
        f"{client};output_handler (vllm/v1/engine/async_llm.py:600);"
        "process_outputs (vllm/v1/engine/output_processor.py:5);update_from_output (vllm/v1/engine/logprobs.py:3) 4",
        f"{client};output_handler (vllm/v1/engine/async_llm.py:600) 3",
        f"{client};select (selectors.py:469) 10",
    ]
    got = samples_by_category(parse(raw))
    assert got == {"model forward, logits": 40, "logprobs: sampler (top-k, gather, rank)": 6, "sampler: sampling": 2,
                   "core ↔ worker: waiting (spin)": 30, "logprobs: client (LogprobsProcessor)": 4,
                   "client: output handler": 3, "event loop, thread pools, load generator": 10}


def test_profile_table_prints_each_stage_and_flat_minus_none() -> None:
    profiles = {"none": {"tokens_per_s": 1000.0, "ms_per_1k_tokens": {"worker": {"model": 100.0}}},
                "flat": {"tokens_per_s": 900.0, "ms_per_1k_tokens": {"worker": {"model": 101.0, "logprobs": 9.0}}}}
    assert profile_table(profiles) == ["process | stage | none | flat | flat − none",
                                       "worker | model | 100 | 101 | +1", "worker | logprobs | 0 | 9 | +9",
                                       "worker | total | 100 | 110 | +10"]
