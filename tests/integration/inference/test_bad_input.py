"""Each bad input gets its status code with a clear message, and the server stays healthy."""

from __future__ import annotations

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from driftloop.v1 import inference_pb2 as pb
from tests.integration.inference.conftest import ADMIN_MD

pytestmark = pytest.mark.integration

INVALID = grpc.StatusCode.INVALID_ARGUMENT
BAD_GENERATE = [
    ("empty prompt", pb.GenerateRequest(prompt=""), INVALID),
    ("blank prompt", pb.GenerateRequest(prompt="   \n"), INVALID),
    ("prompt over the char limit", pb.GenerateRequest(prompt="a" * 2001), INVALID),
    ("prompt over the context", pb.GenerateRequest(prompt="zq!" * 600), INVALID),
    ("max_tokens over the limit", pb.GenerateRequest(prompt="x", sampling=pb.SamplingParams(max_tokens=65)), INVALID),
    ("temperature negative", pb.GenerateRequest(prompt="x", sampling=pb.SamplingParams(temperature=-0.1)), INVALID),
    ("temperature too high", pb.GenerateRequest(prompt="x", sampling=pb.SamplingParams(temperature=2.5)), INVALID),
    ("temperature NaN", pb.GenerateRequest(prompt="x", sampling=pb.SamplingParams(temperature=float("nan"))),
     INVALID),
    ("top_p zero", pb.GenerateRequest(prompt="x", sampling=pb.SamplingParams(top_p=0.0)), INVALID),
    ("top_p above one", pb.GenerateRequest(prompt="x", sampling=pb.SamplingParams(top_p=1.5)), INVALID),
    ("too many stop strings", pb.GenerateRequest(prompt="x", sampling=pb.SamplingParams(stop=list("abcde"))),
     INVALID),
    ("request id too long", pb.GenerateRequest(prompt="x", request_id="r" * 200), INVALID),
    ("unknown alias", pb.GenerateRequest(prompt="x", adapter_alias="no-such-alias"), grpc.StatusCode.NOT_FOUND),
    ("unknown version", pb.GenerateRequest(prompt="x", adapter_alias="no-such-alias", adapter_version="v9"),
     grpc.StatusCode.NOT_FOUND),
    ("version without alias", pb.GenerateRequest(prompt="x", adapter_version="v1"), INVALID),
]


def _assert_healthy(server) -> None:
    health = health_pb2_grpc.HealthStub(server.channel)
    assert health.Check(health_pb2.HealthCheckRequest(), timeout=5).status == health_pb2.HealthCheckResponse.SERVING
    assert server.inference.Generate(pb.GenerateRequest(prompt="the bus leaves"), timeout=60).text


@pytest.mark.parametrize(("case", "request_", "code"), BAD_GENERATE, ids=[c[0] for c in BAD_GENERATE])
@pytest.mark.parametrize("method", ["Generate", "GenerateStream"])
def test_bad_generate_requests(inference_server, case, request_, code, method) -> None:
    stub = inference_server.inference
    with pytest.raises(grpc.RpcError) as info:
        if method == "Generate":
            stub.Generate(request_, timeout=30)
        else:
            list(stub.GenerateStream(request_, timeout=30))
    assert info.value.code() == code, (case, info.value.details())
    assert info.value.details()
    _assert_healthy(inference_server)


@pytest.mark.parametrize(
    ("case", "request_", "code"),
    [
        ("no request id", pb.SubmitFeedbackRequest(rating=1), INVALID),
        ("no rating nor correction", pb.SubmitFeedbackRequest(request_id="r"), INVALID),
        ("unknown rating", pb.SubmitFeedbackRequest(request_id="r", rating=7), INVALID),
        ("correction too long", pb.SubmitFeedbackRequest(request_id="r", rating=2, correction="x" * 5000), INVALID),
    ],
)
def test_bad_feedback(inference_server, case, request_, code) -> None:
    with pytest.raises(grpc.RpcError) as info:
        inference_server.inference.SubmitFeedback(request_, timeout=10)
    assert info.value.code() == code, case


FAILED = grpc.StatusCode.FAILED_PRECONDITION
BAD_ADAPTERS = [
    ("path traversal", "../../../etc", INVALID),
    ("absolute path outside the root", "/etc", INVALID),
    ("missing directory", "transit-qa/v99", grpc.StatusCode.NOT_FOUND),
    ("no weights file", "bad/no-weights", FAILED),
    ("rank above the engine's maximum", "bad/rank-too-large", FAILED),
    ("target modules absent from the base model", "bad/wrong-modules", FAILED),
    ("not a LoRA adapter", "bad/not-lora", FAILED),
    ("config is not JSON", "bad/garbage-config", FAILED),
    ("weights are not safetensors", "bad/garbage-weights", FAILED),
]


@pytest.mark.parametrize(("case", "path", "code"), BAD_ADAPTERS, ids=[c[0] for c in BAD_ADAPTERS])
def test_bad_adapters_are_rejected_before_load(inference_server, case, path, code) -> None:
    with pytest.raises(grpc.RpcError) as info:
        inference_server.admin.LoadAdapter(
            pb.LoadAdapterRequest(adapter_alias="bad-alias", version="v1", path=path), metadata=ADMIN_MD, timeout=30)
    assert info.value.code() == code, (case, info.value.details())
    listed = inference_server.admin.ListAdapters(pb.ListAdaptersRequest(adapter_alias="bad-alias"),
                                                 metadata=ADMIN_MD, timeout=10)
    assert not listed.versions
    _assert_healthy(inference_server)


def test_admin_needs_the_bearer_token(inference_server) -> None:
    for md in [(), (("authorization", "Bearer wrong"),)]:
        with pytest.raises(grpc.RpcError) as info:
            inference_server.admin.ListAdapters(pb.ListAdaptersRequest(), metadata=md, timeout=10)
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_admin_route_and_unload_rules(inference_server) -> None:
    admin = inference_server.admin
    cases = [
        (pb.SetRouteRequest(adapter_alias="rules", stable_version="v1"), FAILED),  # not loaded
        (pb.SetRouteRequest(adapter_alias="rules", stable_version=""), INVALID),
        (pb.SetRouteRequest(adapter_alias="bad alias!", stable_version="v1"), INVALID),
        (pb.UnloadAdapterRequest(adapter_alias="rules", version="v1"), grpc.StatusCode.NOT_FOUND),
    ]
    for request_, code in cases:
        method = admin.SetRoute if isinstance(request_, pb.SetRouteRequest) else admin.UnloadAdapter
        with pytest.raises(grpc.RpcError) as info:
            method(request_, metadata=ADMIN_MD, timeout=10)
        assert info.value.code() == code, request_
    admin.LoadAdapter(pb.LoadAdapterRequest(adapter_alias="rules", version="v1", path="transit-qa/v1"),
                      metadata=ADMIN_MD, timeout=60)
    for weight in (-0.1, 1.5):
        with pytest.raises(grpc.RpcError) as info:
            admin.SetRoute(pb.SetRouteRequest(adapter_alias="rules", stable_version="v1", canary_version="v1",
                                              canary_weight=weight), metadata=ADMIN_MD, timeout=10)
        assert info.value.code() == INVALID
    admin.SetRoute(pb.SetRouteRequest(adapter_alias="rules", stable_version="v1"), metadata=ADMIN_MD, timeout=10)
    with pytest.raises(grpc.RpcError) as info:  # routed versions cannot be unloaded
        admin.UnloadAdapter(pb.UnloadAdapterRequest(adapter_alias="rules", version="v1"), metadata=ADMIN_MD,
                            timeout=10)
    assert info.value.code() == FAILED
    # Same version, other content: versions are immutable.
    with pytest.raises(grpc.RpcError) as info:
        admin.LoadAdapter(pb.LoadAdapterRequest(adapter_alias="rules", version="v1", path="transit-qa/v2"),
                          metadata=ADMIN_MD, timeout=60)
    assert info.value.code() == grpc.StatusCode.ALREADY_EXISTS
    _assert_healthy(inference_server)


def test_deadline_is_honoured(inference_server) -> None:
    with pytest.raises(grpc.RpcError) as info:
        inference_server.inference.Generate(
            pb.GenerateRequest(prompt="the bus", sampling=pb.SamplingParams(max_tokens=64)), timeout=0.005)
    assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    _assert_healthy(inference_server)
