"""How a worker service (monitor, retrainer) runs: metrics endpoint up, one READY line on stdout
(tests and the demo read the port from it), the loop until SIGTERM/SIGINT, then a clean close."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable

from prometheus_client import CollectorRegistry, start_http_server


def serve_until_stopped(run: Callable[[threading.Event], None], close: Callable[[], None],
                        registry: CollectorRegistry, host: str, metrics_port: int) -> None:
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    server, _ = start_http_server(metrics_port, addr=host, registry=registry)
    print(f"READY metrics={host}:{server.server_port}", flush=True)
    try:
        run(stop)
    finally:
        close()
        server.shutdown()
