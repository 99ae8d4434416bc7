"""uvicorn, embedded in the inference service's own asyncio loop (the loop that runs the gRPC
server and the engine client), on its own port; it never installs signal handlers (the service
owns SIGTERM) and stops with the service, letting in-flight responses finish for the grace period.

Bounds at the HTTP boundary, besides the data plane's own rules: a request body over
``MAX_BODY_BYTES`` (the gRPC listener's message limit) is refused with 413 before it is read in
full; more than ``max_concurrent_rpcs`` connections at once get uvicorn's 503.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path

import uvicorn

from driftloop.inference.openai.errors import body as error_body

log = logging.getLogger(__name__)
MAX_BODY_BYTES = 4 * 1024 * 1024


class BodyLimit:
    """ASGI middleware: 413 for a body over ``limit`` bytes, by its Content-Length or as it streams."""

    def __init__(self, app, limit: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or ()).get(b"content-length", b"0")
        if not declared.isdigit() or int(declared) > self.limit:
            return await self._refuse(send, "request body too large" if declared.isdigit() else
                                      "invalid Content-Length")
        seen = 0
        started = refused = False

        async def counted_receive():
            nonlocal seen, started, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:  # answer now; the app sees the client go away and stops reading
                    refused = True
                    if not started:
                        started = True
                        await self._refuse(send, "request body too large")
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message):
            nonlocal started
            if refused:
                return  # the 413 is the answer
            started = started or message["type"] == "http.response.start"
            await send(message)

        await self.app(scope, counted_receive, guarded_send)

    @staticmethod
    async def _refuse(send, message: str) -> None:
        import json

        payload = json.dumps(error_body(f"{message} (limit {MAX_BODY_BYTES} bytes)", "invalid_request_error",
                                        "request_too_large")).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": payload})


class _Embedded(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:  # the service handles SIGTERM itself
        yield


class HttpListener:
    def __init__(self, app, host: str, port: int, max_connections: int, grace_s: float,
                 tls_cert: Path | None = None, tls_key: Path | None = None) -> None:
        config = uvicorn.Config(
            BodyLimit(app), host=host, port=port, lifespan="off", log_level="warning", access_log=False,
            limit_concurrency=max_connections, timeout_graceful_shutdown=int(grace_s) or None,
            ssl_certfile=str(tls_cert) if tls_cert else None, ssl_keyfile=str(tls_key) if tls_key else None,
            server_header=False,
        )
        self._server = _Embedded(config)
        self._task: asyncio.Task | None = None
        self.port = port

    async def start(self, timeout: float = 30.0) -> None:
        self._task = asyncio.ensure_future(self._server.serve())
        deadline = asyncio.get_running_loop().time() + timeout
        while not self._server.started:
            if self._task.done():
                self._task.result()  # raises what stopped it (e.g. the port is taken)
                raise RuntimeError("the HTTP listener stopped during start-up")
            if asyncio.get_running_loop().time() > deadline:
                raise RuntimeError("the HTTP listener did not start")
            await asyncio.sleep(0.05)
        self.port = self._server.servers[0].sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._task is None:
            return
        self._server.should_exit = True
        with contextlib.suppress(Exception):
            await self._task
