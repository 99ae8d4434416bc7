"""Record codec: protobuf bodies with a schema header.

Every record the project writes carries two headers:

* ``schema``: the full protobuf message name, e.g. ``driftloop.v1.PredictionEvent``;
* ``content-type``: ``application/x-protobuf``.

``decode`` refuses what it cannot read with :class:`UndecodableRecord` (carrying a machine-readable
``error_type``), so consumers can route the record to the dead-letter topic and go on.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TypeVar

from google.protobuf import message as _message
from google.protobuf.message import DecodeError

from driftloop.v1 import events_pb2

SCHEMA_HEADER = "schema"
CONTENT_TYPE_HEADER = "content-type"
CONTENT_TYPE = "application/x-protobuf"

Headers = Sequence[tuple[str, bytes]]
M = TypeVar("M", bound=_message.Message)

# Message types allowed on Kafka, by full name.
EVENT_TYPES: dict[str, type[_message.Message]] = {
    cls.DESCRIPTOR.full_name: cls
    for cls in (
        events_pb2.PredictionEvent,
        events_pb2.FeedbackEvent,
        events_pb2.RetrainTrigger,
        events_pb2.AdapterRollout,
        events_pb2.DeadLetter,
    )
}


class UndecodableRecord(ValueError):
    """A record the codec refuses. ``error_type`` is stable and goes into DeadLetter.error_type."""

    def __init__(self, error_type: str, reason: str) -> None:
        super().__init__(f"{error_type}: {reason}")
        self.error_type = error_type
        self.reason = reason


def schema_name(cls: type[_message.Message]) -> str:
    return cls.DESCRIPTOR.full_name


def encode(msg: _message.Message) -> tuple[bytes, list[tuple[str, bytes]]]:
    """Serialise ``msg`` and return (value, headers)."""
    name = msg.DESCRIPTOR.full_name
    if name not in EVENT_TYPES:
        raise TypeError(f"{name} is not a Kafka event type")
    headers = [(SCHEMA_HEADER, name.encode()), (CONTENT_TYPE_HEADER, CONTENT_TYPE.encode())]
    return msg.SerializeToString(deterministic=True), headers


def header_value(headers: Iterable[tuple[str, bytes]] | None, key: str) -> bytes | None:
    for k, v in headers or ():
        if k == key:
            return v
    return None


def decode(value: bytes | None, headers: Iterable[tuple[str, bytes]] | None, expected: type[M]) -> M:
    """Decode a record that must hold ``expected``; raise UndecodableRecord otherwise."""
    msg = decode_any(value, headers)
    if not isinstance(msg, expected):
        raise UndecodableRecord(
            "unexpected_schema", f"expected {schema_name(expected)}, got {msg.DESCRIPTOR.full_name}"
        )
    return msg


def decode_any(value: bytes | None, headers: Iterable[tuple[str, bytes]] | None) -> _message.Message:
    """Decode a record into whichever event type its schema header names."""
    raw_schema = header_value(headers, SCHEMA_HEADER)
    if raw_schema is None:
        raise UndecodableRecord("missing_schema", "record has no 'schema' header")
    try:
        name = raw_schema.decode("ascii")
    except UnicodeDecodeError as exc:
        raise UndecodableRecord("unknown_schema", f"schema header is not ASCII: {raw_schema!r}") from exc
    cls = EVENT_TYPES.get(name)
    if cls is None:
        raise UndecodableRecord("unknown_schema", f"unknown schema {name!r}")
    content_type = header_value(headers, CONTENT_TYPE_HEADER)
    if content_type is not None and content_type != CONTENT_TYPE.encode():
        raise UndecodableRecord("bad_content_type", f"unsupported content-type {content_type!r}")
    if value is None:
        raise UndecodableRecord("empty", "record has no value (tombstone) where an event was expected")
    msg = cls()
    try:
        msg.ParseFromString(value)
    except DecodeError as exc:
        raise UndecodableRecord("undecodable", f"cannot parse {name}: {exc}") from exc
    return msg
