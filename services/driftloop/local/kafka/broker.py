"""The broker process: format the storage once, start, wait for real readiness (the log line, then
a client that gets metadata), create the topics, stop (SIGTERM, then SIGKILL) with nothing left."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from pathlib import Path

from driftloop.core.settings import KafkaSettings
from driftloop.core.topics import ensure_topics
from driftloop.local.kafka.config import server_properties, write_config
from driftloop.local.kafka.jars import BrokerError, ensure_jars
from driftloop.local.kafka.settings import POM, LocalKafkaSettings
from driftloop.local.ports import free_port

READY_LINE = "Kafka Server started"


def pid_alive(pid: int) -> bool:
    """A process with this pid exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.split(") ", 1)[1][:1] != "Z"


class LocalKafka:
    def __init__(self, settings: LocalKafkaSettings | None = None) -> None:
        self.settings = s = settings or LocalKafkaSettings()
        self.port = s.port or free_port(s.host)
        self.controller_port = s.controller_port or free_port(s.host)
        self.state_dir = Path(s.state_dir).resolve()
        self.data_dir = self.state_dir / "data"
        self.log_file = self.state_dir / "server.log"
        self.pid_file = self.state_dir / "kafka.pid"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"{self.settings.host}:{self.port}"

    def kafka_settings(self) -> KafkaSettings:
        return KafkaSettings(bootstrap_servers=self.bootstrap)

    def ensure_jars(self) -> Path:
        return ensure_jars(POM, self.settings.jars_dir)

    def _java(self, jars: Path, log4j: Path, main: str, *args: str) -> list[str]:
        return [self.settings.java, *self.settings.heap_opts.split(), "-XX:+UseG1GC",
                f"-Dlog4j2.configurationFile={log4j}", "-cp", f"{jars}/*", main, *args]

    def _format(self, jars: Path, server: Path, log4j: Path) -> None:
        if (self.data_dir / "meta.properties").exists():
            return
        cluster_id = uuid.uuid4().hex[:22]
        cmd = self._java(jars, log4j, "kafka.tools.StorageTool", "format", "--standalone",
                         "-t", cluster_id, "-c", str(server), "--ignore-formatted")
        result = subprocess.run(cmd, capture_output=True, text=True)
        if result.returncode != 0:
            raise BrokerError(f"storage format failed:\n{result.stdout}\n{result.stderr}")

    # -- lifecycle --------------------------------------------------------------------------------
    def start(self, create_topics: bool = True) -> str:
        """Start the broker, wait for real readiness, create topics; return the bootstrap address."""
        if self.running_pid() is not None:
            raise BrokerError(f"a broker is already running from {self.state_dir} (pid {self.running_pid()})")
        jars = self.ensure_jars()
        props = server_properties(self.settings.host, self.port, self.controller_port, self.data_dir)
        server, log4j = write_config(self.state_dir, props)
        self._format(jars, server, log4j)
        log = self.log_file.open("ab")
        self._proc = subprocess.Popen(
            self._java(jars, log4j, "kafka.Kafka", str(server)),
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
        )
        log.close()
        self.pid_file.write_text(str(self._proc.pid))
        self._wait_ready()
        if create_topics:
            ensure_topics(self.kafka_settings())
        return self.bootstrap

    def detach(self) -> None:
        """Leave the broker running after this process exits (``kafka up``)."""
        self._proc = None

    def _wait_ready(self) -> None:
        offset = 0
        deadline = time.monotonic() + self.settings.start_timeout_s
        seen_line = False
        while time.monotonic() < deadline:
            if self._proc is not None and self._proc.poll() is not None:
                raise BrokerError(f"broker exited with {self._proc.returncode}:\n{self.log_tail()}")
            if not seen_line:
                with self.log_file.open("rb") as f:
                    f.seek(offset)
                    chunk = f.read()
                seen_line = READY_LINE.encode() in chunk
                offset += max(0, len(chunk) - len(READY_LINE))
            if seen_line and self._accepts_clients():
                return
            time.sleep(0.2)
        self.stop()
        raise BrokerError(f"broker not ready after {self.settings.start_timeout_s}s:\n{self.log_tail()}")

    def _accepts_clients(self) -> bool:
        from kafka import KafkaAdminClient
        from kafka.errors import KafkaError

        try:
            admin = KafkaAdminClient(bootstrap_servers=[self.bootstrap], request_timeout_ms=5000)
        except (KafkaError, OSError):
            return False
        try:
            admin.list_topics()
            return True
        except (KafkaError, OSError):
            return False
        finally:
            admin.close()

    def running_pid(self) -> int | None:
        """The broker's pid if one started from this state dir is alive."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return None
        return pid if b"kafka.Kafka" in cmdline and str(self.state_dir).encode() in cmdline else None

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the broker (SIGTERM, then SIGKILL after ``timeout``); idempotent."""
        pid = self.running_pid()
        if pid is not None:
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and self._alive(pid):
                time.sleep(0.1)
            if self._alive(pid):
                os.killpg(pid, signal.SIGKILL)
                while self._alive(pid):
                    time.sleep(0.05)
        if self._proc is not None:
            self._proc.wait(timeout=5)
            self._proc = None
        self.pid_file.unlink(missing_ok=True)

    def _alive(self, pid: int) -> bool:
        if self._proc is not None and self._proc.pid == pid:
            return self._proc.poll() is None
        return pid_alive(pid)

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"
