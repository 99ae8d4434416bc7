"""``python -m driftloop.monitor``: run the monitor (settings from DRIFTLOOP_MONITOR_*)."""

from __future__ import annotations

import logging
import signal
import threading


def main() -> None:
    from prometheus_client import start_http_server

    from driftloop.monitor.app import build_monitor
    from driftloop.monitor.settings import MonitorSettings

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = MonitorSettings()
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    monitor = build_monitor(settings)
    server, _ = start_http_server(settings.metrics_port, addr=settings.host, registry=monitor.registry)
    print(f"READY metrics={settings.host}:{server.server_port}", flush=True)
    try:
        monitor.run(stop)
    finally:
        monitor.close()
        server.shutdown()


if __name__ == "__main__":
    main()
