from __future__ import annotations

import pytest

from driftloop.inference import requests
from driftloop.inference.dataplane import FeedbackRequest
from driftloop.inference.errors import InvalidRequest, PermissionDenied
from driftloop.inference.servicer import generation_request
from driftloop.inference.settings import InferenceSettings
from driftloop.v1 import inference_pb2 as pb

S = InferenceSettings(max_tokens_limit=32, default_max_tokens=8, max_prompt_chars=50, admin_token="t")


def params(req: pb.GenerateRequest, authenticated: bool = False):
    """The wire request as the gRPC handler translates it, validated by the data plane's rules."""
    return requests.generation_params(generation_request(req, stream=False), S, authenticated)


def test_defaults_apply() -> None:
    p = params(pb.GenerateRequest(prompt="hi"))
    assert (p.max_tokens, p.temperature, p.top_p, p.seed, p.stop) == (8, 0.0, 1.0, None, ())


def test_explicit_values() -> None:
    req = pb.GenerateRequest(prompt="hi", sampling=pb.SamplingParams(max_tokens=4, temperature=0.7, top_p=0.9,
                                                                     seed=3, stop=["\n"]))
    p = params(req)
    assert p.max_tokens == 4 and p.seed == 3 and p.stop == ("\n",) and abs(p.temperature - 0.7) < 1e-6


def test_context_fit() -> None:
    p = params(pb.GenerateRequest(prompt="hi"))
    requests.check_fits(100, p, 108)
    with pytest.raises(InvalidRequest):
        requests.check_fits(101, p, 108)


def test_tags_bounded() -> None:
    with pytest.raises(InvalidRequest):
        params(pb.GenerateRequest(prompt="hi", tags={f"k{i}": "v" for i in range(17)}))


def test_settings_reject_inconsistent_tls() -> None:
    with pytest.raises(ValueError):
        InferenceSettings(tls_cert_file="/x.pem", admin_token="t")


def test_admin_needs_a_token_unless_explicitly_open() -> None:
    with pytest.raises(ValueError, match="admin_token"):
        InferenceSettings()
    assert InferenceSettings(allow_unauthenticated_admin=True).admin_token is None


@pytest.mark.parametrize("field,value", [
    ("adapter_alias", "a" * 65), ("adapter_alias", "../etc"), ("adapter_alias", "a/b"), ("adapter_alias", "é"),
    ("adapter_version", "."), ("adapter_version", "v 1"), ("request_id", "x" * 129), ("request_id", "id\n"),
    ("request_id", "-leading"),
])
def test_identifiers_follow_one_rule_and_errors_stay_short(field: str, value: str) -> None:
    req = pb.GenerateRequest(prompt="hi", **{"adapter_alias": "transit-qa", field: value})
    with pytest.raises(InvalidRequest) as err:
        params(req)
    assert field in str(err.value) and len(str(err.value)) < 200


def test_an_oversized_alias_is_refused_without_echoing_it() -> None:
    with pytest.raises(InvalidRequest) as err:
        params(pb.GenerateRequest(prompt="hi", adapter_alias="a" * 1_000_000))
    assert len(str(err.value)) < 200


def test_reserved_tags_need_the_admin_token() -> None:
    req = pb.GenerateRequest(prompt="hi", tags={"source": "retrainer-gate"})
    with pytest.raises(PermissionDenied, match="reserved"):
        params(req, authenticated=False)
    params(req, authenticated=True)
    params(pb.GenerateRequest(prompt="hi", tags={"slice": "fare"}))  # others are free
    with pytest.raises(PermissionDenied):
        requests.check_feedback(FeedbackRequest(request_id="r1", rating=1, tags={"source": "x"}))


def test_tag_keys_follow_the_rule() -> None:
    for bad in ({"": "v"}, {"a b": "v"}, {"k": "v" * 257}, {"k": "line\nbreak"}):
        with pytest.raises(InvalidRequest):
            params(pb.GenerateRequest(prompt="hi", tags=bad))
