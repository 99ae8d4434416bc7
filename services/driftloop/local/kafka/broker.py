"""A real single-node Apache Kafka broker (KRaft) for tests and the local demo.

The broker's jars come from Maven Central through ``tools/kafka/pom.xml`` and are cached under
``.cache/kafka-jars/<hash of the pom>``. State (data, logs, pid) lives in ``state_dir``.

    python -m driftloop.local.kafka up      # start, wait for readiness, create topics, print bootstrap
    python -m driftloop.local.kafka down    # stop; no java process is left behind
    python -m driftloop.local.kafka status
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from driftloop.core.kafka import ensure_topics
from driftloop.core.settings import KafkaSettings

REPO_ROOT = Path(__file__).resolve().parents[3]
POM = REPO_ROOT / "tools" / "kafka" / "pom.xml"
READY_LINE = "Kafka Server started"


class LocalKafkaSettings(BaseSettings):
    """The local broker. Environment prefix ``DRIFTLOOP_LOCAL_KAFKA_``."""

    model_config = SettingsConfigDict(env_prefix="DRIFTLOOP_LOCAL_KAFKA_", extra="forbid")

    host: str = Field("127.0.0.1", description="Listen address (loopback only).")
    port: int = Field(9092, description="Client listener port; 0 picks a free one.")
    controller_port: int = Field(9093, description="KRaft controller port; 0 picks a free one.")
    state_dir: Path = Field(REPO_ROOT / ".run" / "kafka", description="Data, logs, config and pid file.")
    jars_dir: Path = Field(REPO_ROOT / ".cache" / "kafka-jars", description="Cache of the broker's jars.")
    java: str = Field("java", description="Java 17+ executable.")
    heap_opts: str = Field("-Xms256m -Xmx512m", description="JVM heap options.")
    start_timeout_s: float = Field(120.0, description="How long to wait for readiness.")


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class BrokerError(RuntimeError):
    pass


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

    # -- jars ---------------------------------------------------------------------------------
    def ensure_jars(self) -> Path:
        """Return a folder holding the broker's jars, running Maven once per pom version."""
        digest = hashlib.sha256(POM.read_bytes()).hexdigest()[:16]
        target = Path(self.settings.jars_dir).resolve() / digest
        if (target / ".complete").exists():
            return target
        tmp = target.with_name(f"{digest}.tmp-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        cmd = ["mvn", "-q", "-B", "-f", str(POM), "dependency:copy-dependencies",
               f"-DoutputDirectory={tmp}", "-DincludeScope=runtime"]
        print(f"fetching Kafka jars with Maven into {target} ...", file=sys.stderr, flush=True)
        result = subprocess.run(cmd, capture_output=True, text=True)
        if result.returncode != 0:
            raise BrokerError(f"maven failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
        (tmp / ".complete").write_text(digest)
        shutil.rmtree(target, ignore_errors=True)
        tmp.rename(target)
        return target

    # -- config ---------------------------------------------------------------------------------
    def _write_config(self) -> tuple[Path, Path]:
        h = self.settings.host
        self.state_dir.mkdir(parents=True, exist_ok=True)
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.bootstrap.servers": f"{h}:{self.controller_port}",
            "listeners": f"PLAINTEXT://{h}:{self.port},CONTROLLER://{h}:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://{h}:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": str(self.data_dir),
            "num.partitions": "1",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "5",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            "auto.create.topics.enable": "false",
            "log.cleaner.backoff.ms": "1000",
            # A local broker shares its cores with training and the engine: CPU stalls of several
            # seconds were measured (2 cores), longer than the default 9 s session, and a fenced
            # broker takes every partition offline. Tolerate stalls rather than fence.
            "broker.session.timeout.ms": "45000",
        }
        server = self.state_dir / "server.properties"
        server.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
        log4j = self.state_dir / "log4j2.properties"
        log4j.write_text(
            "rootLogger.level = INFO\nrootLogger.appenderRef.stdout.ref = STDOUT\n"
            "appender.stdout.type = Console\nappender.stdout.name = STDOUT\n"
            "appender.stdout.layout.type = PatternLayout\n"
            "appender.stdout.layout.pattern = [%d] %p %m (%c)%n\n"
            "logger.kafka.name = kafka\nlogger.kafka.level = INFO\n"
            "logger.apache.name = org.apache.kafka\nlogger.apache.level = WARN\n"
        )
        return server, log4j

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
        server, log4j = self._write_config()
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
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return False
        return stat.split(") ", 1)[1][:1] != "Z"

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m driftloop.local.kafka", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["up", "down", "status", "jars"])
    args = parser.parse_args(argv)
    broker = LocalKafka()
    if args.command == "jars":
        print(broker.ensure_jars())
    elif args.command == "up":
        pid = broker.running_pid()
        if pid is None:
            broker.start()
            # Leave the broker running after this process exits.
            broker._proc = None
        else:
            ensure_topics(broker.kafka_settings())
        print(broker.bootstrap)
    elif args.command == "down":
        broker.stop()
        print("stopped")
    else:
        pid = broker.running_pid()
        print(f"running pid={pid} bootstrap={broker.bootstrap}" if pid else "not running")
        return 0 if pid else 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
