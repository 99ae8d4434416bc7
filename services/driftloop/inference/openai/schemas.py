"""Request bodies of the OpenAI-compatible endpoints, and how they become the data plane's requests.

Fields the service cannot honour are refused by name (``n`` > 1, ``top_logprobs`` > 0, tools, ``echo``,
...) rather than silently ignored; fields it does not know are ignored like OpenAI's own server does for
optional extensions. Sizes are bounded here only as far as parsing goes; the data plane applies the
same rules as for gRPC (characters, turns, tokens, tags)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from driftloop.inference.dataplane import ChatMessage, FeedbackRequest, GenerationRequest, Sampling
from driftloop.inference.errors import InvalidRequest
from driftloop.v1 import events_pb2

MAX_STOP_ITEMS = 16  # the data plane allows fewer; this only bounds parsing
# OpenAI options the service cannot honour, refused by name unless sent with a value meaning "off"
UNSUPPORTED = ("tools", "functions", "tool_choice", "function_call", "echo", "suffix", "best_of", "logit_bias")
OFF = (None, False, [], {}, "", "none")


class _Body(BaseModel):
    model_config = ConfigDict(extra="allow", str_max_length=4 * 1024 * 1024)


class Message(_Body):
    role: str = Field(max_length=64)
    # OpenAI also allows a list of content parts; text parts are joined, others refused.
    content: str | list[dict[str, Any]] | None = None

    def text(self, i: int) -> str:
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        parts = []
        for part in self.content:
            if part.get("type") != "text" or not isinstance(part.get("text"), str):
                raise InvalidRequest(f"messages[{i}]: only text content parts are supported")
            parts.append(part["text"])
        return "".join(parts)


class _Generation(_Body):
    model: str = Field("", max_length=256)
    max_tokens: int | None = Field(None, ge=0)
    max_completion_tokens: int | None = Field(None, ge=0)
    min_tokens: int = Field(0, ge=0)  # vLLM's extension, kept for the same clients
    temperature: float | None = None
    top_p: float | None = None
    seed: int | None = Field(None, ge=0, lt=2**64)
    stop: str | list[str] | None = None
    stream: bool = False
    stream_options: dict[str, Any] | None = None
    n: int = 1
    logprobs: bool | int | None = None  # chat: true/false; completions: 0 (the sampled tokens) or null
    top_logprobs: int | None = None
    metadata: dict[str, str] | None = None  # becomes the request's tags

    @field_validator("stop")
    @classmethod
    def _bounded_stop(cls, v):
        if isinstance(v, list) and len(v) > MAX_STOP_ITEMS:
            raise ValueError(f"at most {MAX_STOP_ITEMS} stop strings")
        return v

    def refuse_unsupported(self) -> None:
        if self.n != 1:
            raise InvalidRequest("n must be 1: one choice per request")
        if self.top_logprobs or (self.logprobs is not True and self.logprobs):
            raise InvalidRequest("top_logprobs are not returned: only the sampled tokens' logprobs (chat: logprobs "
                                 "true; completions: logprobs 0)")
        extra = self.model_extra or {}
        for name in UNSUPPORTED:
            value = extra.get(name)
            if value not in OFF and not (name == "best_of" and value == 1):
                raise InvalidRequest(f"{name} is not supported")
        fmt = extra.get("response_format")
        if isinstance(fmt, dict) and fmt.get("type") not in (None, "text"):
            raise InvalidRequest("response_format: only text is supported")

    def include_usage(self) -> bool:
        return bool(self.stream and self.stream_options and self.stream_options.get("include_usage"))

    def target(self) -> tuple[str, str]:
        """``model`` → (alias, version): "alias", "alias@version", or the base model ("" or its name)."""
        alias, _, version = self.model.partition("@")
        return alias, version

    def sampling(self) -> Sampling:
        stop = (self.stop,) if isinstance(self.stop, str) else tuple(self.stop or ())
        return Sampling(max_tokens=self.max_completion_tokens or self.max_tokens or 0, min_tokens=self.min_tokens,
                        temperature=self.temperature, top_p=self.top_p, seed=self.seed, stop=stop,
                        logprobs=self.wants_logprobs())

    def wants_logprobs(self) -> bool:
        return self.logprobs is True

    def _request(self, base_model: str, request_id: str, **text: Any) -> GenerationRequest:
        self.refuse_unsupported()
        alias, version = self.target()
        if alias == base_model and not version:
            alias = ""
        return GenerationRequest(request_id=request_id, adapter_alias=alias, adapter_version=version,
                                 sampling=self.sampling(), tags=dict(self.metadata or {}), stream=self.stream,
                                 transport="http", **text)


class ChatCompletionBody(_Generation):
    messages: list[Message] = Field(max_length=10_000)

    def request(self, base_model: str, request_id: str) -> GenerationRequest:
        turns = tuple(ChatMessage(m.role, m.text(i)) for i, m in enumerate(self.messages))
        if not turns:
            raise InvalidRequest("messages is empty")
        return self._request(base_model, request_id, messages=turns)


class CompletionBody(_Generation):
    prompt: str | list[str]

    def wants_logprobs(self) -> bool:  # the legacy API: an int, the number of top tokens (0: sampled only)
        return self.logprobs is not None and self.logprobs is not False

    def request(self, base_model: str, request_id: str) -> GenerationRequest:
        prompt = self.prompt
        if isinstance(prompt, list):
            if len(prompt) != 1:
                raise InvalidRequest("prompt: send one prompt per request")
            prompt = prompt[0]
        return self._request(base_model, request_id, prompt=prompt)


RATINGS = {"positive": events_pb2.RATING_POSITIVE, "negative": events_pb2.RATING_NEGATIVE, None: 0}


class FeedbackBody(_Body):
    """driftloop's own endpoint: feedback on an earlier response, by that response's ``id``."""

    id: str = Field(max_length=256)
    rating: Literal["positive", "negative"] | None = None
    correction: str = ""
    comment: str = ""
    metadata: dict[str, str] | None = None

    def request(self) -> FeedbackRequest:
        return FeedbackRequest(request_id=self.id, rating=RATINGS[self.rating], correction=self.correction,
                               comment=self.comment, tags=dict(self.metadata or {}))
