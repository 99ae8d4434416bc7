"""The one exception → gRPC status mapping, as a server interceptor (unary and streaming calls).

A domain error (:mod:`driftloop.inference.errors`) becomes its status and message. Anything else is
a bug: logged with its traceback, counted once in ``driftloop_inference_unexpected_errors_total``,
and answered INTERNAL with the exception's type only (never its text: it may hold request data).
"""

from __future__ import annotations

import logging
from typing import Any, NoReturn

import grpc
from grpc_interceptor import AsyncExceptionToStatusInterceptor

from driftloop.core.metrics import InferenceMetrics
from driftloop.inference.errors import InferenceError

log = logging.getLogger(__name__)


class ErrorInterceptor(AsyncExceptionToStatusInterceptor):
    def __init__(self, metrics: InferenceMetrics) -> None:
        super().__init__()
        self._m = metrics

    async def handle_exception(self, ex: Exception, request_or_iterator: Any,
                               context: grpc.aio.ServicerContext, method_name: str) -> NoReturn:
        if isinstance(ex, InferenceError):
            await context.abort(ex.code, str(ex))
        if context.code() is None:  # not an abort the handler itself already sent
            method = method_name.rsplit("/", 1)[-1]
            log.error("%s failed unexpectedly", method, exc_info=ex)
            self._m.unexpected_errors.labels(method).inc()
            await context.abort(grpc.StatusCode.INTERNAL, f"internal error: {type(ex).__name__}")
        raise ex
