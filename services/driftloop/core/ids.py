"""Identifier rules: one set, applied at every boundary (gRPC, Kafka records, CLI, files).

Every identifier that crosses a boundary is checked here before it becomes a key, a metric label,
a version name or a path: charset and length per kind. A name becomes a path only through
:func:`path_in`, which refuses anything that is not a plain name or that resolves outside its root
(symlinks included). Error messages never echo more than a short prefix of the offending value.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path


class InvalidIdentifier(ValueError):
    """An identifier that breaks its rule. ``kind`` names the field (e.g. ``adapter_alias``)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(f"{kind} {message}")
        self.kind = kind


@dataclass(frozen=True)
class Rule:
    kind: str
    pattern: re.Pattern[str]
    max_len: int
    description: str

    def check(self, value: str, required: bool = True) -> str:
        if not value:
            if required:
                raise InvalidIdentifier(self.kind, "is required")
            return value
        if len(value) > self.max_len:
            raise InvalidIdentifier(self.kind, f"has {len(value)} characters; at most {self.max_len}")
        if not self.pattern.fullmatch(value):
            raise InvalidIdentifier(self.kind, f"{shown(value)} must be {self.description}")
        return value

    def ok(self, value: str) -> bool:
        return bool(value) and len(value) <= self.max_len and bool(self.pattern.fullmatch(value))


_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_NAME_TEXT = "letters, digits, '.', '_' or '-', starting with a letter or digit"

ALIAS = Rule("adapter_alias", _NAME, 64, _NAME_TEXT)
VERSION = Rule("adapter_version", _NAME, 64, _NAME_TEXT)
MODEL = Rule("model", _NAME, 128, _NAME_TEXT)
TRIGGER_ID = Rule("trigger_id", re.compile(r"[A-Za-z0-9_-]+"), 64, "letters, digits, '_' or '-'")
REQUEST_ID = Rule("request_id", re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]*"), 128,
                  "letters, digits, '.', '_', ':' or '-', starting with a letter or digit")
TAG_KEY = Rule("tag key", re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*"), 64, _NAME_TEXT)
MAX_TAGS = 16
MAX_TAG_VALUE = 256

# Tags the loop itself uses. Honoured only from authenticated callers (the admin token): a client
# that could set them could hide its traffic from the monitor or the canary check.
RESERVED_TAGS = frozenset({"source"})
# ``source`` values that mark requests that are not live traffic (the gate's, an evaluation's).
NOT_TRAFFIC_SOURCES = frozenset({"retrainer-gate", "evaluation"})


def request_bucket(request_id: str) -> float:
    """A request id's place in [0, 1), the same in every process: the canary split (inference) and
    the embedding sample (monitor) use it, so a request is in or out of both the same way."""
    h = hashlib.blake2b(request_id.encode(), digest_size=8).digest()
    return int.from_bytes(h, "big") / 2**64


def shown(value: str, limit: int = 32) -> str:
    """A bounded rendering of untrusted input for error messages and logs."""
    return repr(value[:limit] + ("…" if len(value) > limit else ""))


def check_tags(tags: Mapping[str, str]) -> None:
    if len(tags) > MAX_TAGS:
        raise InvalidIdentifier("tags", f"has {len(tags)} entries; at most {MAX_TAGS}")
    for k, v in tags.items():
        TAG_KEY.check(k)
        if len(v) > MAX_TAG_VALUE or not v.isprintable():
            raise InvalidIdentifier(f"tag {k}", f"value must be printable and at most {MAX_TAG_VALUE} characters")


def path_in(root: Path, *names: str) -> Path:
    """``root/name/...`` for plain names only (each a NAME: no separators, no '.' or '..'), and only
    if the result — symlinks resolved — stays inside ``root``. The one way a name becomes a path."""
    if not names:
        raise InvalidIdentifier("path", "needs at least one name")
    for name in names:
        if not (name and len(name) <= 128 and _NAME.fullmatch(name)):
            raise InvalidIdentifier("path component", f"{shown(name or '')} must be {_NAME_TEXT}")
    base = Path(root).resolve()
    target = base.joinpath(*names)
    resolved = target.resolve()
    if resolved != base and base not in resolved.parents:
        raise InvalidIdentifier("path", f"{shown('/'.join(names))} resolves outside {base}")
    return target
