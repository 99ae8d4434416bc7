"""Who may call what: the admin bearer token.

AdapterAdmin calls need ``authorization: Bearer <token>``; so do the reserved request tags the loop
itself uses (``source``: a client that could set it could hide its traffic from the monitor and the
canary check). With no token configured the service refuses to start unless
``ALLOW_UNAUTHENTICATED_ADMIN`` is set — the explicit switch to be insecure, under which every
caller counts as authenticated.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable

import grpc

ADMIN_PREFIX = "/driftloop.v1.AdapterAdmin/"


class AdminAuth:
    def __init__(self, token: str | None) -> None:
        self._expected = f"Bearer {token}".encode() if token else None

    @property
    def open(self) -> bool:
        return self._expected is None

    def admitted(self, metadata: Iterable[tuple[str, str | bytes]] | None) -> bool:
        if self._expected is None:
            return True
        given = dict(metadata or ()).get("authorization", "")
        return hmac.compare_digest(given.encode() if isinstance(given, str) else given, self._expected)


class AdminAuthInterceptor(grpc.aio.ServerInterceptor):
    """Refuses AdapterAdmin calls without the bearer token (UNAUTHENTICATED)."""

    def __init__(self, auth: AdminAuth) -> None:
        self._auth = auth

        async def deny(request, context):
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "admin calls need a valid bearer token")

        self._deny = grpc.unary_unary_rpc_method_handler(deny)

    async def intercept_service(self, continuation, details):
        if details.method.startswith(ADMIN_PREFIX) and not self._auth.admitted(details.invocation_metadata):
            return self._deny
        return await continuation(details)
