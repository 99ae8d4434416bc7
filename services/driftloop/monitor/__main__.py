"""``python -m driftloop.monitor``: run the monitor (settings from DRIFTLOOP_MONITOR_*)."""

from __future__ import annotations

import logging


def main() -> None:
    from driftloop.core.runtime import serve_until_stopped
    from driftloop.monitor.app import build_monitor
    from driftloop.monitor.settings import MonitorSettings

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = MonitorSettings()
    monitor = build_monitor(settings)
    serve_until_stopped(monitor.run, monitor.close, monitor.registry, settings.host, settings.metrics_port)


if __name__ == "__main__":
    main()
