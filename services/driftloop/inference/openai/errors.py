"""The one mapping of the HTTP listener's failures to statuses and OpenAI-shaped error bodies
(``{"error": {"message", "type", "param", "code"}}``), so the ``openai`` SDK raises the exception a
caller expects (``BadRequestError``, ``NotFoundError``, ``RateLimitError``, ...).

Domain errors keep their message (the data plane's messages never echo the input); a body that
does not parse gets a short message naming the field, never its value; anything unforeseen is a
bug: logged with its traceback, counted in ``driftloop_inference_unexpected_errors_total`` and
answered 500 with the exception's type only — as on the gRPC side.
"""

from __future__ import annotations

import logging

import grpc
from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from driftloop.core.metrics import InferenceMetrics
from driftloop.inference.errors import InferenceError

log = logging.getLogger(__name__)

# gRPC status of a domain error → (HTTP status, OpenAI error type)
STATUS: dict[grpc.StatusCode, tuple[int, str]] = {
    grpc.StatusCode.INVALID_ARGUMENT: (400, "invalid_request_error"),
    grpc.StatusCode.FAILED_PRECONDITION: (400, "invalid_request_error"),
    grpc.StatusCode.NOT_FOUND: (404, "not_found_error"),
    grpc.StatusCode.ALREADY_EXISTS: (409, "conflict_error"),
    grpc.StatusCode.UNAUTHENTICATED: (401, "authentication_error"),
    grpc.StatusCode.PERMISSION_DENIED: (403, "permission_error"),
    grpc.StatusCode.RESOURCE_EXHAUSTED: (429, "rate_limit_error"),
    grpc.StatusCode.DEADLINE_EXCEEDED: (504, "timeout_error"),
    grpc.StatusCode.CANCELLED: (499, "cancelled"),
    grpc.StatusCode.UNAVAILABLE: (503, "service_unavailable_error"),
    grpc.StatusCode.INTERNAL: (500, "internal_error"),
}


def body(message: str, type_: str, code: str | None = None, param: str | None = None) -> dict:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def error_response(status: int, message: str, type_: str, code: str | None = None,
                   param: str | None = None) -> JSONResponse:
    return JSONResponse(body(message, type_, code, param), status_code=status)


def for_domain_error(exc: InferenceError) -> tuple[int, dict]:
    status, type_ = STATUS.get(exc.code, (500, "internal_error"))
    code = "model_not_found" if exc.code == grpc.StatusCode.NOT_FOUND else exc.code.name.lower()
    return status, body(str(exc), type_, code)


def install(app, metrics: InferenceMetrics) -> None:
    @app.exception_handler(InferenceError)
    async def domain(request: Request, exc: InferenceError) -> JSONResponse:
        status, payload = for_domain_error(exc)
        return JSONResponse(payload, status_code=status)

    @app.exception_handler(RequestValidationError)
    async def unparsable(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = (exc.errors() or [{}])[0]
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body") or "body"
        # pydantic's message names the rule, never the value (the input is not echoed)
        return error_response(400, f"{where}: {str(first.get('msg', 'invalid'))[:120]}", "invalid_request_error",
                              "invalid_body", where[:64])

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        # the framework's own refusals: unknown path (404), wrong method (405), a body it could not
        # parse at all (400, e.g. nesting too deep for the JSON decoder)
        type_ = "not_found_error" if exc.status_code == 404 else "invalid_request_error"
        return error_response(exc.status_code, str(exc.detail)[:120], type_)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("%s %s failed unexpectedly", request.method, request.url.path, exc_info=exc)
        route = getattr(request.scope.get("route"), "path", "unknown")  # a declared path: a bounded label
        metrics.unexpected_errors.labels(route).inc()
        return error_response(500, f"internal error: {type(exc).__name__}", "internal_error")
