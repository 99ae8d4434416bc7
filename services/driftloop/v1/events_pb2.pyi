import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ErrorSource(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ERROR_SOURCE_UNSPECIFIED: _ClassVar[ErrorSource]
    ERROR_SOURCE_CLIENT: _ClassVar[ErrorSource]
    ERROR_SOURCE_SERVER: _ClassVar[ErrorSource]

class Rating(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RATING_UNSPECIFIED: _ClassVar[Rating]
    RATING_POSITIVE: _ClassVar[Rating]
    RATING_NEGATIVE: _ClassVar[Rating]
ERROR_SOURCE_UNSPECIFIED: ErrorSource
ERROR_SOURCE_CLIENT: ErrorSource
ERROR_SOURCE_SERVER: ErrorSource
RATING_UNSPECIFIED: Rating
RATING_POSITIVE: Rating
RATING_NEGATIVE: Rating

class PredictionEvent(_message.Message):
    __slots__ = ("request_id", "request_time", "response_time", "model", "adapter_alias", "adapter_version", "prompt", "completion", "prompt_tokens", "completion_tokens", "mean_token_logprob", "finish_reason", "latency_seconds", "time_to_first_token_seconds", "error_code", "error_message", "replica", "stream", "tags", "truncated_fields", "pinned", "error_source", "messages", "transport")
    class TagsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_TIME_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_TIME_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    ADAPTER_ALIAS_FIELD_NUMBER: _ClassVar[int]
    ADAPTER_VERSION_FIELD_NUMBER: _ClassVar[int]
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    COMPLETION_FIELD_NUMBER: _ClassVar[int]
    PROMPT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    COMPLETION_TOKENS_FIELD_NUMBER: _ClassVar[int]
    MEAN_TOKEN_LOGPROB_FIELD_NUMBER: _ClassVar[int]
    FINISH_REASON_FIELD_NUMBER: _ClassVar[int]
    LATENCY_SECONDS_FIELD_NUMBER: _ClassVar[int]
    TIME_TO_FIRST_TOKEN_SECONDS_FIELD_NUMBER: _ClassVar[int]
    ERROR_CODE_FIELD_NUMBER: _ClassVar[int]
    ERROR_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    REPLICA_FIELD_NUMBER: _ClassVar[int]
    STREAM_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    TRUNCATED_FIELDS_FIELD_NUMBER: _ClassVar[int]
    PINNED_FIELD_NUMBER: _ClassVar[int]
    ERROR_SOURCE_FIELD_NUMBER: _ClassVar[int]
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    TRANSPORT_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    request_time: _timestamp_pb2.Timestamp
    response_time: _timestamp_pb2.Timestamp
    model: str
    adapter_alias: str
    adapter_version: str
    prompt: str
    completion: str
    prompt_tokens: int
    completion_tokens: int
    mean_token_logprob: float
    finish_reason: str
    latency_seconds: float
    time_to_first_token_seconds: float
    error_code: str
    error_message: str
    replica: str
    stream: bool
    tags: _containers.ScalarMap[str, str]
    truncated_fields: _containers.RepeatedScalarFieldContainer[str]
    pinned: bool
    error_source: ErrorSource
    messages: _containers.RepeatedCompositeFieldContainer[ChatMessage]
    transport: str
    def __init__(self, request_id: _Optional[str] = ..., request_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., response_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., model: _Optional[str] = ..., adapter_alias: _Optional[str] = ..., adapter_version: _Optional[str] = ..., prompt: _Optional[str] = ..., completion: _Optional[str] = ..., prompt_tokens: _Optional[int] = ..., completion_tokens: _Optional[int] = ..., mean_token_logprob: _Optional[float] = ..., finish_reason: _Optional[str] = ..., latency_seconds: _Optional[float] = ..., time_to_first_token_seconds: _Optional[float] = ..., error_code: _Optional[str] = ..., error_message: _Optional[str] = ..., replica: _Optional[str] = ..., stream: bool = ..., tags: _Optional[_Mapping[str, str]] = ..., truncated_fields: _Optional[_Iterable[str]] = ..., pinned: bool = ..., error_source: _Optional[_Union[ErrorSource, str]] = ..., messages: _Optional[_Iterable[_Union[ChatMessage, _Mapping]]] = ..., transport: _Optional[str] = ...) -> None: ...

class ChatMessage(_message.Message):
    __slots__ = ("role", "content")
    ROLE_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    role: str
    content: str
    def __init__(self, role: _Optional[str] = ..., content: _Optional[str] = ...) -> None: ...

class FeedbackEvent(_message.Message):
    __slots__ = ("feedback_id", "request_id", "time", "rating", "correction", "comment", "tags", "truncated_fields")
    class TagsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    FEEDBACK_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    RATING_FIELD_NUMBER: _ClassVar[int]
    CORRECTION_FIELD_NUMBER: _ClassVar[int]
    COMMENT_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    TRUNCATED_FIELDS_FIELD_NUMBER: _ClassVar[int]
    feedback_id: str
    request_id: str
    time: _timestamp_pb2.Timestamp
    rating: Rating
    correction: str
    comment: str
    tags: _containers.ScalarMap[str, str]
    truncated_fields: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, feedback_id: _Optional[str] = ..., request_id: _Optional[str] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., rating: _Optional[_Union[Rating, str]] = ..., correction: _Optional[str] = ..., comment: _Optional[str] = ..., tags: _Optional[_Mapping[str, str]] = ..., truncated_fields: _Optional[_Iterable[str]] = ...) -> None: ...

class SignalEvidence(_message.Message):
    __slots__ = ("signal", "statistic", "threshold", "p_value", "detected", "sample_count", "windows_over")
    SIGNAL_FIELD_NUMBER: _ClassVar[int]
    STATISTIC_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    P_VALUE_FIELD_NUMBER: _ClassVar[int]
    DETECTED_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_COUNT_FIELD_NUMBER: _ClassVar[int]
    WINDOWS_OVER_FIELD_NUMBER: _ClassVar[int]
    signal: str
    statistic: float
    threshold: float
    p_value: float
    detected: bool
    sample_count: int
    windows_over: int
    def __init__(self, signal: _Optional[str] = ..., statistic: _Optional[float] = ..., threshold: _Optional[float] = ..., p_value: _Optional[float] = ..., detected: bool = ..., sample_count: _Optional[int] = ..., windows_over: _Optional[int] = ...) -> None: ...

class RetrainTrigger(_message.Message):
    __slots__ = ("trigger_id", "dedupe_key", "created_time", "model", "adapter_alias", "adapter_version", "evidence", "window_start", "window_end", "prediction_count", "feedback_count", "negative_feedback_count", "error_count", "reason", "attempt", "parent_trigger_id", "min_corrections")
    TRIGGER_ID_FIELD_NUMBER: _ClassVar[int]
    DEDUPE_KEY_FIELD_NUMBER: _ClassVar[int]
    CREATED_TIME_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    ADAPTER_ALIAS_FIELD_NUMBER: _ClassVar[int]
    ADAPTER_VERSION_FIELD_NUMBER: _ClassVar[int]
    EVIDENCE_FIELD_NUMBER: _ClassVar[int]
    WINDOW_START_FIELD_NUMBER: _ClassVar[int]
    WINDOW_END_FIELD_NUMBER: _ClassVar[int]
    PREDICTION_COUNT_FIELD_NUMBER: _ClassVar[int]
    FEEDBACK_COUNT_FIELD_NUMBER: _ClassVar[int]
    NEGATIVE_FEEDBACK_COUNT_FIELD_NUMBER: _ClassVar[int]
    ERROR_COUNT_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    PARENT_TRIGGER_ID_FIELD_NUMBER: _ClassVar[int]
    MIN_CORRECTIONS_FIELD_NUMBER: _ClassVar[int]
    trigger_id: str
    dedupe_key: str
    created_time: _timestamp_pb2.Timestamp
    model: str
    adapter_alias: str
    adapter_version: str
    evidence: _containers.RepeatedCompositeFieldContainer[SignalEvidence]
    window_start: _timestamp_pb2.Timestamp
    window_end: _timestamp_pb2.Timestamp
    prediction_count: int
    feedback_count: int
    negative_feedback_count: int
    error_count: int
    reason: str
    attempt: int
    parent_trigger_id: str
    min_corrections: int
    def __init__(self, trigger_id: _Optional[str] = ..., dedupe_key: _Optional[str] = ..., created_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., model: _Optional[str] = ..., adapter_alias: _Optional[str] = ..., adapter_version: _Optional[str] = ..., evidence: _Optional[_Iterable[_Union[SignalEvidence, _Mapping]]] = ..., window_start: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., window_end: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., prediction_count: _Optional[int] = ..., feedback_count: _Optional[int] = ..., negative_feedback_count: _Optional[int] = ..., error_count: _Optional[int] = ..., reason: _Optional[str] = ..., attempt: _Optional[int] = ..., parent_trigger_id: _Optional[str] = ..., min_corrections: _Optional[int] = ...) -> None: ...

class AdapterVersionRef(_message.Message):
    __slots__ = ("version", "path", "sha256")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    version: str
    path: str
    sha256: str
    def __init__(self, version: _Optional[str] = ..., path: _Optional[str] = ..., sha256: _Optional[str] = ...) -> None: ...

class AdapterRollout(_message.Message):
    __slots__ = ("adapter_alias", "rollout_id", "generation", "time", "stable", "canary", "canary_weight", "action", "reason", "trigger_id")
    ADAPTER_ALIAS_FIELD_NUMBER: _ClassVar[int]
    ROLLOUT_ID_FIELD_NUMBER: _ClassVar[int]
    GENERATION_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    STABLE_FIELD_NUMBER: _ClassVar[int]
    CANARY_FIELD_NUMBER: _ClassVar[int]
    CANARY_WEIGHT_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    TRIGGER_ID_FIELD_NUMBER: _ClassVar[int]
    adapter_alias: str
    rollout_id: str
    generation: int
    time: _timestamp_pb2.Timestamp
    stable: AdapterVersionRef
    canary: AdapterVersionRef
    canary_weight: float
    action: str
    reason: str
    trigger_id: str
    def __init__(self, adapter_alias: _Optional[str] = ..., rollout_id: _Optional[str] = ..., generation: _Optional[int] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., stable: _Optional[_Union[AdapterVersionRef, _Mapping]] = ..., canary: _Optional[_Union[AdapterVersionRef, _Mapping]] = ..., canary_weight: _Optional[float] = ..., action: _Optional[str] = ..., reason: _Optional[str] = ..., trigger_id: _Optional[str] = ...) -> None: ...

class DeadLetter(_message.Message):
    __slots__ = ("origin_topic", "origin_partition", "origin_offset", "key", "value", "headers", "error_type", "reason", "consumer_group", "time")
    class HeadersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: bytes
        def __init__(self, key: _Optional[str] = ..., value: _Optional[bytes] = ...) -> None: ...
    ORIGIN_TOPIC_FIELD_NUMBER: _ClassVar[int]
    ORIGIN_PARTITION_FIELD_NUMBER: _ClassVar[int]
    ORIGIN_OFFSET_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    HEADERS_FIELD_NUMBER: _ClassVar[int]
    ERROR_TYPE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    CONSUMER_GROUP_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    origin_topic: str
    origin_partition: int
    origin_offset: int
    key: bytes
    value: bytes
    headers: _containers.ScalarMap[str, bytes]
    error_type: str
    reason: str
    consumer_group: str
    time: _timestamp_pb2.Timestamp
    def __init__(self, origin_topic: _Optional[str] = ..., origin_partition: _Optional[int] = ..., origin_offset: _Optional[int] = ..., key: _Optional[bytes] = ..., value: _Optional[bytes] = ..., headers: _Optional[_Mapping[str, bytes]] = ..., error_type: _Optional[str] = ..., reason: _Optional[str] = ..., consumer_group: _Optional[str] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...
