"""Domain errors of the inference service and the one place that maps them to gRPC status codes.

Handlers raise these; the servicer's ``abort_on_error`` turns them into statuses. Nothing else
builds a status.
"""

from __future__ import annotations

import grpc


class InferenceError(Exception):
    code: grpc.StatusCode = grpc.StatusCode.INTERNAL


class InvalidRequest(InferenceError):
    code = grpc.StatusCode.INVALID_ARGUMENT


class NotFound(InferenceError):
    code = grpc.StatusCode.NOT_FOUND


class FailedPrecondition(InferenceError):
    code = grpc.StatusCode.FAILED_PRECONDITION


class AlreadyExists(InferenceError):
    code = grpc.StatusCode.ALREADY_EXISTS


class Unauthenticated(InferenceError):
    code = grpc.StatusCode.UNAUTHENTICATED


class PermissionDenied(InferenceError):
    code = grpc.StatusCode.PERMISSION_DENIED


class EngineUnavailable(InferenceError):
    code = grpc.StatusCode.UNAVAILABLE


class DeadlineExceeded(InferenceError):
    code = grpc.StatusCode.DEADLINE_EXCEEDED


class InvalidAdapter(FailedPrecondition):
    """An adapter that must never reach the engine (missing files, rank, modules, path)."""


def status_for(exc: BaseException) -> tuple[grpc.StatusCode, str]:
    if isinstance(exc, InferenceError):
        return exc.code, str(exc)
    return grpc.StatusCode.INTERNAL, f"internal error: {type(exc).__name__}"
