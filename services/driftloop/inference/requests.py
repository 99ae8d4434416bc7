"""Validation of client requests: every rule in one place, each failure an InvalidRequest."""

from __future__ import annotations

import math
from collections.abc import Mapping

from driftloop.inference.engine.base import GenerationParams
from driftloop.inference.errors import InvalidRequest
from driftloop.inference.settings import InferenceSettings
from driftloop.v1 import inference_pb2

MAX_ID_CHARS = 128
MAX_STOP = 4
MAX_STOP_CHARS = 64
MAX_TAGS = 16
MAX_TAG_KEY = 64
MAX_TAG_VALUE = 256
MAX_CORRECTION_CHARS = 4000


def check_id(kind: str, value: str) -> None:
    if len(value) > MAX_ID_CHARS or not value.isprintable():
        raise InvalidRequest(f"{kind} must be printable and at most {MAX_ID_CHARS} characters")


def check_tags(tags: Mapping[str, str]) -> None:
    if len(tags) > MAX_TAGS:
        raise InvalidRequest(f"at most {MAX_TAGS} tags")
    for k, v in tags.items():
        if not k or len(k) > MAX_TAG_KEY or len(v) > MAX_TAG_VALUE:
            raise InvalidRequest(f"tag keys 1..{MAX_TAG_KEY} and values ≤{MAX_TAG_VALUE} characters")


def generation_params(req: inference_pb2.GenerateRequest, s: InferenceSettings) -> GenerationParams:
    """Check a GenerateRequest's prompt-independent fields and build the engine parameters."""
    if req.request_id:
        check_id("request_id", req.request_id)
    if not req.prompt.strip():
        raise InvalidRequest("prompt is empty")
    if len(req.prompt) > s.max_prompt_chars:
        raise InvalidRequest(f"prompt has {len(req.prompt)} characters; the limit is {s.max_prompt_chars}")
    check_tags(req.tags)
    sp = req.sampling
    max_tokens = sp.max_tokens or s.default_max_tokens
    if max_tokens > s.max_tokens_limit:
        raise InvalidRequest(f"max_tokens {max_tokens} is above the limit {s.max_tokens_limit}")
    temperature = sp.temperature if sp.HasField("temperature") else s.default_temperature
    if not (math.isfinite(temperature) and 0.0 <= temperature <= 2.0):
        raise InvalidRequest(f"temperature {temperature} is outside [0, 2]")
    top_p = sp.top_p if sp.HasField("top_p") else 1.0
    if not (math.isfinite(top_p) and 0.0 < top_p <= 1.0):
        raise InvalidRequest(f"top_p {top_p} is outside (0, 1]")
    if sp.min_tokens > max_tokens:
        raise InvalidRequest(f"min_tokens {sp.min_tokens} exceeds max_tokens {max_tokens}")
    if len(sp.stop) > MAX_STOP or any(not x or len(x) > MAX_STOP_CHARS for x in sp.stop):
        raise InvalidRequest(f"at most {MAX_STOP} stop strings of 1..{MAX_STOP_CHARS} characters")
    return GenerationParams(
        max_tokens=max_tokens,
        temperature=float(temperature),
        top_p=float(top_p),
        seed=sp.seed if sp.HasField("seed") else None,
        stop=tuple(sp.stop),
        min_tokens=sp.min_tokens,
    )


def check_fits(prompt_tokens: int, params: GenerationParams, max_model_len: int) -> None:
    if prompt_tokens + params.max_tokens > max_model_len:
        raise InvalidRequest(
            f"prompt has {prompt_tokens} tokens; with max_tokens {params.max_tokens} that exceeds the "
            f"context length {max_model_len}"
        )


def check_feedback(req: inference_pb2.SubmitFeedbackRequest) -> None:
    if not req.request_id:
        raise InvalidRequest("request_id is required")
    check_id("request_id", req.request_id)
    if req.rating == 0 and not req.correction:
        raise InvalidRequest("give a rating or a correction")
    if req.rating not in (0, 1, 2):
        raise InvalidRequest(f"unknown rating {req.rating}")
    if len(req.correction) > MAX_CORRECTION_CHARS or len(req.comment) > MAX_CORRECTION_CHARS:
        raise InvalidRequest(f"correction and comment are limited to {MAX_CORRECTION_CHARS} characters")
    check_tags(req.tags)
