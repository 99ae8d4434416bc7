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
        # PYTHONFAULTHANDLER: a child that hangs can be made to print every thread's stack (SIGABRT,
        # see wait_ready) before it is stopped, so a start-up that never ends says where it stood.
        self.proc = subprocess.Popen(
            [python, "-m", module, *args], env={"PYTHONFAULTHANDLER": "1", **os.environ, **env},
            stdout=subprocess.PIPE,
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
        state = self.diagnose()
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(signal.SIGABRT)  # faulthandler writes the stacks to the log
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(10)
        self.stop()
        raise RuntimeError(f"{self.name} not ready after {timeout:.0f}s ({state}); log:\n{self.log_tail()}")

    def diagnose(self) -> str:
        """The child's scheduler state and CPU time, the machine's load and memory: tells a starved or
        swapping machine (little CPU used) from a hang (blocked) or a busy loop (CPU used)."""
        parts = []
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
            tick = os.sysconf("SC_CLK_TCK")
            parts.append(f"child state {fields[0]}, cpu {(int(fields[11]) + int(fields[12])) / tick:.1f} s")
        except (OSError, IndexError, ValueError):
            parts.append("child state unknown")
        with contextlib.suppress(OSError):
            parts.append("load " + " ".join(Path("/proc/loadavg").read_text().split()[:3]))
        with contextlib.suppress(OSError, ValueError):
            info = dict(line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines())
            parts.append(", ".join(f"{k} {int(info[k].split()[0]) // 1024} MiB"
                                   for k in ("MemAvailable", "SwapFree") if k in info))
        return "; ".join(parts)

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
