"""Validation of client requests: every rule in one place, each failure an InvalidRequest (or a
PermissionDenied for reserved tags without the admin token). Identifiers follow the project-wide
rules of :mod:`driftloop.core.ids`; messages never echo more than a short prefix of the input."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING

from driftloop.core import ids
from driftloop.core.chat import CHAT_ROLES, MAX_MESSAGES
from driftloop.inference.engine.base import GenerationParams
from driftloop.inference.errors import InvalidRequest, PermissionDenied
from driftloop.inference.settings import InferenceSettings

if TYPE_CHECKING:
    from driftloop.inference.dataplane import FeedbackRequest, GenerationRequest

MAX_STOP = 4
MAX_STOP_CHARS = 64
MAX_CORRECTION_CHARS = 4000


def check_identifiers(request_id: str = "", alias: str = "", version: str = "") -> None:
    try:
        ids.REQUEST_ID.check(request_id, required=False)
        ids.ALIAS.check(alias, required=False)
        ids.VERSION.check(version, required=False)
    except ids.InvalidIdentifier as exc:
        raise InvalidRequest(str(exc)) from None


def check_tags(tags: Mapping[str, str], authenticated: bool) -> None:
    try:
        ids.check_tags(tags)
    except ids.InvalidIdentifier as exc:
        raise InvalidRequest(str(exc)) from None
    reserved = sorted(ids.RESERVED_TAGS & set(tags))
    if reserved and not authenticated:
        raise PermissionDenied(f"tag {reserved[0]!r} is reserved for the loop itself and needs the admin token")


def generation_params(req: GenerationRequest, s: InferenceSettings, authenticated: bool = False) -> GenerationParams:
    """Check a request's prompt-independent fields and build the engine parameters."""
    check_identifiers(req.request_id, req.adapter_alias, req.adapter_version)
    if req.adapter_version and not req.adapter_alias:
        raise InvalidRequest("adapter_version needs adapter_alias")
    check_input(req, s)
    check_tags(req.tags, authenticated)
    sp = req.sampling
    max_tokens = sp.max_tokens or s.default_max_tokens
    if max_tokens > s.max_tokens_limit:
        raise InvalidRequest(f"max_tokens {max_tokens} is above the limit {s.max_tokens_limit}")
    temperature = s.default_temperature if sp.temperature is None else sp.temperature
    if not (math.isfinite(temperature) and 0.0 <= temperature <= 2.0):
        raise InvalidRequest(f"temperature {temperature} is outside [0, 2]")
    top_p = 1.0 if sp.top_p is None else sp.top_p
    if not (math.isfinite(top_p) and 0.0 < top_p <= 1.0):
        raise InvalidRequest(f"top_p {top_p} is outside (0, 1]")
    if sp.min_tokens > max_tokens:
        raise InvalidRequest(f"min_tokens {sp.min_tokens} exceeds max_tokens {max_tokens}")
    if len(sp.stop) > MAX_STOP or any(not x or len(x) > MAX_STOP_CHARS for x in sp.stop):
        raise InvalidRequest(f"at most {MAX_STOP} stop strings of 1..{MAX_STOP_CHARS} characters")
    return GenerationParams(max_tokens=max_tokens, temperature=float(temperature), top_p=float(top_p),
                            seed=sp.seed, stop=tuple(sp.stop), min_tokens=sp.min_tokens, incremental=req.stream,
                            logprobs=sp.logprobs)


def check_input(req: GenerationRequest, s: InferenceSettings) -> None:
    """A raw prompt or a conversation, never both; bounded in characters (the conversation's
    contents together) and, for a conversation, in turns; roles from :data:`CHAT_ROLES`."""
    if req.messages:
        if req.prompt:
            raise InvalidRequest("give either prompt or messages, not both")
        if len(req.messages) > MAX_MESSAGES:
            raise InvalidRequest(f"{len(req.messages)} messages; the limit is {MAX_MESSAGES}")
        for i, m in enumerate(req.messages):
            if m.role not in CHAT_ROLES:
                raise InvalidRequest(f"messages[{i}].role {m.role[:16]!r} is not one of "
                                     f"{', '.join(sorted(CHAT_ROLES))}")
        if not any(m.content.strip() for m in req.messages):
            raise InvalidRequest("every message is empty")
        chars = sum(len(m.content) for m in req.messages)
        if chars > s.max_prompt_chars:
            raise InvalidRequest(f"messages have {chars} characters; the limit is {s.max_prompt_chars}")
        return
    if not req.prompt.strip():
        raise InvalidRequest("prompt is empty (give a prompt or messages)")
    if len(req.prompt) > s.max_prompt_chars:
        raise InvalidRequest(f"prompt has {len(req.prompt)} characters; the limit is {s.max_prompt_chars}")


def check_fits(prompt_tokens: int, params: GenerationParams, max_model_len: int) -> None:
    if prompt_tokens + params.max_tokens > max_model_len:
        raise InvalidRequest(
            f"prompt has {prompt_tokens} tokens; with max_tokens {params.max_tokens} that exceeds the "
            f"context length {max_model_len}"
        )


def check_feedback(req: FeedbackRequest, authenticated: bool = False) -> None:
    if not req.request_id:
        raise InvalidRequest("request_id is required")
    check_identifiers(req.request_id)
    if req.rating == 0 and not req.correction:
        raise InvalidRequest("give a rating or a correction")
    if req.rating not in (0, 1, 2):
        raise InvalidRequest(f"unknown rating {req.rating}")
    if len(req.correction) > MAX_CORRECTION_CHARS or len(req.comment) > MAX_CORRECTION_CHARS:
        raise InvalidRequest(f"correction and comment are limited to {MAX_CORRECTION_CHARS} characters")
    check_tags(req.tags, authenticated)
