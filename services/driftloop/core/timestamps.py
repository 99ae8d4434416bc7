"""protobuf Timestamps <-> epoch seconds: the one conversion every service uses."""

from __future__ import annotations

import time

from google.protobuf.timestamp_pb2 import Timestamp


def timestamp(epoch: float | None = None) -> Timestamp:
    """A Timestamp for ``epoch`` seconds (now when None)."""
    ts = Timestamp()
    ts.FromNanoseconds(int((time.time() if epoch is None else epoch) * 1e9))
    return ts


def seconds(ts: Timestamp) -> float:
    """Epoch seconds of a Timestamp (0.0 for an unset one)."""
    return ts.seconds + ts.nanos / 1e9
