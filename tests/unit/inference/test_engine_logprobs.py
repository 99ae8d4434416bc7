"""The vLLM engine's per-token logprobs (what OpenAI's ``logprobs`` returns): its outputs hold one
dict per position, by token id, of Logprob objects, or (``flat_logprobs``) vLLM's FlatLogprobs."""

from __future__ import annotations

from types import SimpleNamespace

from driftloop.inference.engine.vllm_engine import sampled_logprobs


def lp(x: float) -> SimpleNamespace:
    return SimpleNamespace(logprob=x, rank=1, decoded_token=None)


def test_the_sampled_tokens_logprobs_are_the_outputs_last_positions() -> None:
    # FINAL_ONLY: every position; DELTA: the new ones (here the output's two tokens of three positions)
    positions = [{5: lp(-0.1)}, {7: lp(-0.2), 9: lp(-3.0)}, {8: lp(-0.3)}]
    assert sampled_logprobs([5, 7, 8], positions) == ((5, -0.1), (7, -0.2), (8, -0.3))
    assert sampled_logprobs([7, 8], positions) == ((7, -0.2), (8, -0.3))


def test_no_tokens_no_logprobs_and_minus_infinity_is_bounded() -> None:
    assert sampled_logprobs([], [{1: lp(-1.0)}]) == () and sampled_logprobs([1], None) == ()
    # a position without the sampled token (never expected) or -inf: -9999.0, as vLLM's server reports it
    assert sampled_logprobs([1, 2], [{3: lp(-1.0)}, {2: lp(float("-inf"))}]) == ((1, -9999.0), (2, -9999.0))


def test_vllms_flat_logprobs_read_the_same() -> None:
    # what the engine asks for (flat_logprobs=True): vLLM's FlatLogprobs, one entry per position here
    from vllm.logprobs import FlatLogprobs

    flat = FlatLogprobs()
    for tid, x in ((5, -0.1), (7, -0.2), (8, float("-inf"))):
        flat.append_fast([tid], [x], iter([1]), [None])
    assert sampled_logprobs([5, 7, 8], flat) == ((5, -0.1), (7, -0.2), (8, -9999.0))
    assert sampled_logprobs([7, 8], flat) == ((7, -0.2), (8, -9999.0))
