"""Adapter versions and alias routing with canaries and draining.

An *alias* (e.g. ``transit-qa``) routes to immutable *versions*; each version has its own path and
its own LoRA int id, never reused, so a swap is an alias switch and never a same-name reload.
Versions leave the engine only after their in-flight requests have finished. What an adapter
directory must hold before it is loaded is checked in :mod:`driftloop.inference.adapter_files`.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from driftloop.core import ids
from driftloop.inference.adapter_files import validate_adapter
from driftloop.inference.engine.base import LoraHandle
from driftloop.inference.errors import AlreadyExists, FailedPrecondition, InvalidRequest, NotFound


def check_name(rule: ids.Rule, value: str) -> str:
    try:
        return rule.check(value)
    except ids.InvalidIdentifier as exc:
        raise InvalidRequest(str(exc)) from None


@dataclass(eq=False)
class AdapterVersion:
    alias: str
    version: str
    path: Path
    rel_path: str
    lora_int_id: int
    rank: int
    sha256: str
    in_flight: int = 0
    draining: bool = False
    _idle: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self._idle.set()

    @property
    def lora_name(self) -> str:
        return f"{self.alias}@{self.version}"

    @property
    def handle(self) -> LoraHandle:
        """This version as the engine knows it."""
        return LoraHandle(self.lora_name, self.lora_int_id, self.path)


@dataclass(frozen=True)
class Route:
    alias: str
    stable: str
    canary: str = ""
    canary_weight: float = 0.0
    generation: int = 0


class AdapterRegistry:
    """Versions loaded in the engine and the routes over them. Lives on the server's event loop:
    route reads and in-flight counting happen without an ``await`` between them, so a request
    always acquires a version that is routed at that instant."""

    def __init__(
        self,
        root: Path,
        max_rank: int,
        base_modules: Iterable[str],
        add_to_engine: Callable[[AdapterVersion], Awaitable[None]],
        remove_from_engine: Callable[[AdapterVersion], Awaitable[None]],
    ) -> None:
        self.root = Path(root)
        self.max_rank = max_rank
        self.base_modules = frozenset(base_modules)
        self._add = add_to_engine
        self._remove = remove_from_engine
        self._versions: dict[tuple[str, str], AdapterVersion] = {}
        self._routes: dict[str, Route] = {}
        self._ids = itertools.count(1)
        self._lock = asyncio.Lock()
        self.on_change: Callable[[], None] = lambda: None

    # -- reads ------------------------------------------------------------------------------------
    def versions(self, alias: str = "") -> list[AdapterVersion]:
        return [v for (a, _), v in sorted(self._versions.items()) if not alias or a == alias]

    def routes(self, alias: str = "") -> list[Route]:
        return [r for a, r in sorted(self._routes.items()) if not alias or a == alias]

    def route(self, alias: str) -> Route | None:
        return self._routes.get(alias)

    def get(self, alias: str, version: str) -> AdapterVersion | None:
        return self._versions.get((alias, version))

    def is_routed(self, v: AdapterVersion) -> bool:
        r = self._routes.get(v.alias)
        return r is not None and v.version in (r.stable, r.canary)

    # -- request path -------------------------------------------------------------------------------
    def acquire(self, alias: str, version: str, request_id: str) -> AdapterVersion | None:
        """Pick the version for a request and count it in flight. ``None`` means the base model."""
        if not alias:
            if version:
                raise InvalidRequest("adapter_version given without adapter_alias")
            return None
        if version:
            chosen = self._versions.get((alias, version))
            if chosen is None or chosen.draining:
                raise NotFound(f"adapter version {alias}@{version} is not loaded")
        else:
            route = self._routes.get(alias)
            if route is None:
                raise NotFound(f"unknown adapter alias {alias!r}")
            use_canary = bool(route.canary) and ids.request_bucket(request_id) < route.canary_weight
            chosen = self._versions[(alias, route.canary if use_canary else route.stable)]
        chosen.in_flight += 1
        chosen._idle.clear()
        return chosen

    @staticmethod
    def release(v: AdapterVersion | None) -> None:
        if v is None:
            return
        v.in_flight -= 1
        if v.in_flight <= 0:
            v.in_flight = 0
            v._idle.set()

    # -- admin ------------------------------------------------------------------------------------
    async def load(self, alias: str, version: str, path: str, sha256: str = "") -> AdapterVersion:
        check_name(ids.ALIAS, alias)
        check_name(ids.VERSION, version)
        async with self._lock:
            existing = self._versions.get((alias, version))
            manifest = await asyncio.to_thread(
                validate_adapter, self.root, path, self.max_rank, self.base_modules, sha256
            )
            if existing is not None:
                if existing.path == manifest.path and existing.sha256 == manifest.sha256:
                    existing.draining = False  # asked for again while draining: keep it
                    return existing
                raise AlreadyExists(
                    f"{alias}@{version} is already loaded from other content; versions are immutable"
                )
            v = AdapterVersion(
                alias=alias, version=version, path=manifest.path,
                rel_path=manifest.path.relative_to(self.root.resolve()).as_posix(),
                lora_int_id=next(self._ids), rank=manifest.rank, sha256=manifest.sha256,
            )
            await self._add(v)
            self._versions[(alias, version)] = v
        self.on_change()
        return v

    def set_route(
        self, alias: str, stable: str, canary: str = "", canary_weight: float = 0.0,
        generation: int | None = None,
    ) -> Route:
        check_name(ids.ALIAS, alias)
        if not stable:
            raise InvalidRequest("stable_version is required")
        if not 0.0 <= canary_weight <= 1.0:
            raise InvalidRequest(f"canary_weight {canary_weight} is outside [0, 1]")
        if canary_weight > 0 and not canary:
            raise InvalidRequest("canary_weight given without canary_version")
        if canary and canary == stable:
            raise InvalidRequest("canary_version equals stable_version")
        for ver in filter(None, (stable, canary)):
            v = self._versions.get((alias, ver))
            if v is None or v.draining:
                raise FailedPrecondition(f"{alias}@{ver} is not loaded; LoadAdapter first")
        current = self._routes.get(alias)
        gen = generation if generation is not None else (current.generation + 1 if current else 1)
        route = Route(alias, stable, canary if canary_weight > 0 or canary else "", canary_weight, gen)
        self._routes[alias] = route
        self.on_change()
        return route

    def remove_route(self, alias: str) -> None:
        self._routes.pop(alias, None)
        self.on_change()

    async def unload(self, alias: str, version: str, timeout: float | None = None) -> None:
        """Take a version out of service: refuse if routed, wait for its requests, then remove."""
        v = self._versions.get((alias, version))
        if v is None:
            raise NotFound(f"adapter version {alias}@{version} is not loaded")
        if self.is_routed(v):
            raise FailedPrecondition(f"{alias}@{version} is routed; route the alias elsewhere first")
        v.draining = True
        self.on_change()
        await asyncio.wait_for(v._idle.wait(), timeout)
        async with self._lock:
            if self._versions.get((alias, version)) is v and v.draining and not self.is_routed(v):
                await self._remove(v)
                del self._versions[(alias, version)]
        self.on_change()
