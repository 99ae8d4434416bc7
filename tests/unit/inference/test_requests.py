from __future__ import annotations

import pytest

from driftloop.inference import requests
from driftloop.inference.errors import InvalidRequest
from driftloop.inference.settings import InferenceSettings
from driftloop.v1 import inference_pb2 as pb

S = InferenceSettings(max_tokens_limit=32, default_max_tokens=8, max_prompt_chars=50)


def test_defaults_apply() -> None:
    p = requests.generation_params(pb.GenerateRequest(prompt="hi"), S)
    assert (p.max_tokens, p.temperature, p.top_p, p.seed, p.stop) == (8, 0.0, 1.0, None, ())


def test_explicit_values() -> None:
    req = pb.GenerateRequest(prompt="hi", sampling=pb.SamplingParams(max_tokens=4, temperature=0.7, top_p=0.9,
                                                                     seed=3, stop=["\n"]))
    p = requests.generation_params(req, S)
    assert p.max_tokens == 4 and p.seed == 3 and p.stop == ("\n",) and abs(p.temperature - 0.7) < 1e-6


def test_context_fit() -> None:
    params = requests.generation_params(pb.GenerateRequest(prompt="hi"), S)
    requests.check_fits(100, params, 108)
    with pytest.raises(InvalidRequest):
        requests.check_fits(101, params, 108)


def test_tags_bounded() -> None:
    with pytest.raises(InvalidRequest):
        requests.generation_params(pb.GenerateRequest(prompt="hi", tags={f"k{i}": "v" for i in range(17)}), S)


def test_settings_reject_inconsistent_tls() -> None:
    with pytest.raises(ValueError):
        InferenceSettings(tls_cert_file="/x.pem")
