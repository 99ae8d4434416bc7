"""Start a driftloop service as a child process and wait until it prints its READY line.

Services print one line ``READY key=host:port ...`` on stdout once they serve; everything else the
child writes goes to a log file. Used by tests, benchmarks and the demo.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path


class ServiceProcess:
    def __init__(self, name: str, module: str, env: dict[str, str], log_path: Path,
                 python: str = sys.executable, args: tuple[str, ...] = ()) -> None:
        self.name = name
        self.log_path = Path(log_path)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.ready: dict[str, str] = {}
        self._ready_event = threading.Event()
        self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [python, "-m", module, *args], env={**os.environ, **env}, stdout=subprocess.PIPE,
            stderr=self._log, stdin=subprocess.DEVNULL, start_new_session=True,
        )
        self._reader = threading.Thread(target=self._read, name=f"{name}-stdout", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            line = raw.decode(errors="replace")
            if line.startswith("READY ") and not self._ready_event.is_set():
                self.ready = dict(part.split("=", 1) for part in line.split()[1:] if "=" in part)
                self._ready_event.set()
            self._log.write(raw)
            self._log.flush()

    def wait_ready(self, timeout: float) -> dict[str, str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._ready_event.wait(0.2):
                return self.ready
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}; log:\n{self.log_tail()}")
        self.stop()
        raise RuntimeError(f"{self.name} not ready after {timeout:.0f}s; log:\n{self.log_tail()}")

    def stop(self, timeout: float = 60.0) -> int | None:
        """SIGTERM (graceful), then SIGKILL of the whole process group after ``timeout``."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        # Reap anything the service left in its group (e.g. engine workers).
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self._reader.join(timeout=5)
        self._log.close()
        return self.proc.returncode

    def kill(self) -> None:
        """SIGKILL the service's whole process group (a crash, for tests)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"
