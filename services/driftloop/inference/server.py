"""Wires the inference service: engine, adapter registry, event emitter, rollout follower, gRPC
server (Inference, AdapterAdmin, health, reflection) and the metrics endpoint."""

from __future__ import annotations

import asyncio
import functools
import logging
import signal
import time
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from prometheus_client import CollectorRegistry, start_http_server

from driftloop.core.emitter import EventEmitter
from driftloop.core.metrics import InferenceMetrics
from driftloop.inference.adapters import AdapterRegistry, AdapterVersion
from driftloop.inference.auth import AdminAuth, AdminAuthInterceptor
from driftloop.inference.dataplane import DataPlane
from driftloop.inference.engine import create_engine
from driftloop.inference.events import EventPublisher
from driftloop.inference.interceptor import ErrorInterceptor
from driftloop.inference.openai.routes import build_app
from driftloop.inference.openai.server import HttpListener
from driftloop.inference.rollouts import RolloutFollower, rollout_consumer
from driftloop.inference.servicer import AdapterAdminServicer, InferenceServicer
from driftloop.inference.settings import InferenceSettings
from driftloop.v1 import inference_pb2, inference_pb2_grpc

log = logging.getLogger(__name__)
SERVICE_NAMES = (
    inference_pb2.DESCRIPTOR.services_by_name["Inference"].full_name,
    inference_pb2.DESCRIPTOR.services_by_name["AdapterAdmin"].full_name,
)


class InferenceApp:
    def __init__(self, settings: InferenceSettings) -> None:
        self.s = settings
        self.registry_prom = CollectorRegistry()
        self.metrics = InferenceMetrics(self.registry_prom, settings.model_name)
        self.engine = create_engine(settings)
        self.health = health.aio.HealthServicer()
        self.server: grpc.aio.Server | None = None
        self.admin_server: grpc.aio.Server | None = None  # AdapterAdmin on its own port, when ADMIN_PORT is set
        self.admin_port: int | None = None
        self.http: HttpListener | None = None  # the OpenAI-compatible listener, when OPENAI_HTTP is on
        self.emitter: EventEmitter | None = None
        self.follower: RolloutFollower | None = None
        self.port = settings.port
        self.metrics_port = settings.metrics_port
        self._metrics_server = None

    async def start(self) -> None:
        """Engine → adapter registry → event emitter → gRPC servers and metrics → catch up with the
        rollout topic → serve (health SERVING only then)."""
        s = self.s
        await self.engine.start()
        self.metrics.info.info({"engine": self.engine.kind, "model": s.model_name,
                                "max_model_len": str(self.engine.max_model_len)})
        self._start_registry()
        if s.emit_events:
            self.emitter = EventEmitter(s.kafka, Path(s.spool_dir) / "events.sqlite", s.spool_max_bytes,
                                        self.metrics.events, batch=s.spool_batch,
                                        ship_interval_s=s.spool_ship_interval_ms / 1000)
            self.emitter.start()
        auth = AdminAuth(s.admin_token.get_secret_value() if s.admin_token else None)
        if auth.open:
            log.warning("AdapterAdmin and reserved tags are OPEN to every caller (ALLOW_UNAUTHENTICATED_ADMIN)")
        self._add_servers(auth)
        metrics_server, _ = start_http_server(s.metrics_port, addr=s.host, registry=self.registry_prom)
        self._metrics_server = metrics_server
        self.metrics_port = metrics_server.server_port
        if s.follow_rollouts:
            await self._follow_rollouts()
        for server in (self.server, self.admin_server):
            if server is not None:
                await server.start()
        if self.http is not None:
            await self.http.start()
        for name in ("", *SERVICE_NAMES):
            await self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
        log.info("inference serving on %s:%d (metrics :%d, engine %s, model %s)", s.host, self.port,
                 self.metrics_port, self.engine.kind, s.model_name)

    def _start_registry(self) -> None:
        async def add(v: AdapterVersion) -> None:
            await self.engine.add_lora(v.handle)

        async def remove(v: AdapterVersion) -> None:
            await self.engine.remove_lora(v.handle)

        Path(self.s.adapter_root).mkdir(parents=True, exist_ok=True)
        self.registry = AdapterRegistry(self.s.adapter_root, self.s.max_lora_rank,
                                        self.engine.lora_target_modules(), add, remove)
        self.registry.on_change = functools.partial(publish_adapter_metrics, self.registry, self.metrics)

    def _grpc_server(self, auth: AdminAuth) -> grpc.aio.Server:
        # maximum_concurrent_rpcs: calls beyond it are refused with RESOURCE_EXHAUSTED by gRPC itself.
        return grpc.aio.server(interceptors=[AdminAuthInterceptor(auth), ErrorInterceptor(self.metrics)],
                               maximum_concurrent_rpcs=self.s.max_concurrent_rpcs,
                               options=[("grpc.max_receive_message_length", 4 * 1024 * 1024),
                                        ("grpc.so_reuseport", 0)])

    def _credentials(self) -> grpc.ServerCredentials | None:
        s = self.s
        if not (s.tls_cert_file and s.tls_key_file):
            return None
        return grpc.ssl_server_credentials([(Path(s.tls_key_file).read_bytes(), Path(s.tls_cert_file).read_bytes())])

    def _listen(self, server: grpc.aio.Server, port: int, creds: grpc.ServerCredentials | None) -> int:
        address = f"{self.s.host}:{port}"
        return server.add_secure_port(address, creds) if creds else server.add_insecure_port(address)

    def _add_servers(self, auth: AdminAuth) -> None:
        s = self.s
        self.server = self._grpc_server(auth)
        events = EventPublisher(self.emitter, s) if self.emitter else None
        plane = DataPlane(s, self.engine, self.registry, self.metrics, events)
        inference_pb2_grpc.add_InferenceServicer_to_server(InferenceServicer(plane, auth), self.server)
        if s.openai_http:  # the second transport over the same data plane
            self.http = HttpListener(build_app(plane, self.registry, auth, self.metrics), s.host, s.http_port,
                                     s.max_concurrent_rpcs, s.grace_period_s, s.tls_cert_file, s.tls_key_file)
        admin = AdapterAdminServicer(self.registry, self.metrics)
        # With ADMIN_PORT, AdapterAdmin is served on its own listener only, so a network policy can let
        # just the retrainer (and operators) reach it; without, on the main port beside Inference.
        if s.admin_port is None:
            inference_pb2_grpc.add_AdapterAdminServicer_to_server(admin, self.server)
        else:
            self.admin_server = self._grpc_server(auth)
            inference_pb2_grpc.add_AdapterAdminServicer_to_server(admin, self.admin_server)
            health_pb2_grpc.add_HealthServicer_to_server(self.health, self.admin_server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        reflection.enable_server_reflection((*SERVICE_NAMES, health.SERVICE_NAME, reflection.SERVICE_NAME),
                                            self.server)
        creds = self._credentials()  # read once, for both listeners
        self.port = self._listen(self.server, s.port, creds)
        if self.admin_server is not None:
            self.admin_port = self._listen(self.admin_server, s.admin_port or 0, creds)

    async def _follow_rollouts(self) -> None:
        """Converge to the published adapter state before taking traffic (bounded: Kafka may be down)."""
        s = self.s
        self.follower = RolloutFollower(lambda: rollout_consumer(s.kafka), self.registry,
                                        asyncio.get_running_loop(), self.metrics)
        self.follower.start()
        deadline = time.monotonic() + s.rollout_catch_up_s
        while not self.follower.caught_up.is_set() and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        if not self.follower.caught_up.is_set():
            log.warning("rollout topic not caught up after %.0f s; serving what is loaded", s.rollout_catch_up_s)

    async def stop(self) -> None:
        for name in ("", *SERVICE_NAMES):
            await self.health.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
        if self.admin_server is not None:
            await self.admin_server.stop(self.s.grace_period_s)
        if self.http is not None:
            await self.http.stop()
        if self.server is not None:
            await self.server.stop(self.s.grace_period_s)
        if self.follower is not None:
            await asyncio.to_thread(self.follower.stop)
        if self.emitter is not None:
            await asyncio.to_thread(self.emitter.close, self.s.spool_drain_s, self.s.spool_ephemeral)
        await self.engine.shutdown()
        if self._metrics_server is not None:
            self._metrics_server.shutdown()


def publish_adapter_metrics(registry: AdapterRegistry, metrics: InferenceMetrics) -> None:
    """The registry's on_change hook: versions and their roles, canary weights, and the request series
    of versions no longer loaded removed (so ``adapter_version`` stays bounded by what is loaded)."""
    g = metrics.adapter_version
    g.clear()
    loaded = registry.versions()
    for v in loaded:
        route = registry.route(v.alias)
        role = "stable" if route and route.stable == v.version else (
            "canary" if route and route.canary == v.version else "draining" if v.draining else "loaded")
        g.labels(v.alias, v.version, role).set(1)
    metrics.canary_weight.clear()
    for r in registry.routes():
        metrics.canary_weight.labels(r.alias).set(r.canary_weight)
    metrics.keep_versions((v.alias, v.version) for v in loaded)


async def serve(settings: InferenceSettings) -> int:
    """Run until SIGTERM/SIGINT (exit code 0) or until the engine dies (exit code 1: an engine
    death is unrecoverable in-process, so the supervisor — Kubernetes — restarts the pod)."""
    app = InferenceApp(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await app.start()
    # One line on stdout that tools (tests, the demo) read to find the ports.
    admin = f" admin={settings.host}:{app.admin_port}" if app.admin_port is not None else ""
    http = f" http={settings.host}:{app.http.port}" if app.http is not None else ""
    print(f"READY grpc={settings.host}:{app.port} metrics={settings.host}:{app.metrics_port}{admin}{http}", flush=True)
    exit_code = 0

    async def watchdog() -> None:
        nonlocal exit_code
        while not stop.is_set():
            await asyncio.sleep(2.0)
            if not await app.engine.check_health():
                log.error("engine is dead; stopping so the supervisor restarts this replica")
                exit_code = 1
                stop.set()

    watcher = asyncio.ensure_future(watchdog())
    await stop.wait()
    watcher.cancel()
    log.info("shutting down (grace %.0fs)", settings.grace_period_s)
    await app.stop()
    return exit_code
