"""Domain errors of the inference service, each with its canonical status code.

The data plane and the handlers raise these; :class:`driftloop.inference.interceptor.ErrorInterceptor`
is the one place that turns them (and anything unexpected) into gRPC statuses.
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


class Internal(InferenceError):
    """A failure of the service itself (e.g. the engine raised), already logged and counted."""

    code = grpc.StatusCode.INTERNAL


class InvalidAdapter(FailedPrecondition):
    """An adapter that must never reach the engine (missing files, rank, modules, path)."""

