"""The broker's configuration files: ``server.properties`` (one KRaft node, broker and controller,
loopback listeners) and ``log4j2.properties``."""

from __future__ import annotations

from pathlib import Path

LOG4J = (
    "rootLogger.level = INFO\nrootLogger.appenderRef.stdout.ref = STDOUT\n"
    "appender.stdout.type = Console\nappender.stdout.name = STDOUT\n"
    "appender.stdout.layout.type = PatternLayout\n"
    "appender.stdout.layout.pattern = [%d] %p %m (%c)%n\n"
    "logger.kafka.name = kafka\nlogger.kafka.level = INFO\n"
    "logger.apache.name = org.apache.kafka\nlogger.apache.level = WARN\n"
)


def server_properties(host: str, port: int, controller_port: int, data_dir: Path) -> dict[str, str]:
    return {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.bootstrap.servers": f"{host}:{controller_port}",
        "listeners": f"PLAINTEXT://{host}:{port},CONTROLLER://{host}:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://{host}:{port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "log.dirs": str(data_dir),
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


def write_config(state_dir: Path, props: dict[str, str]) -> tuple[Path, Path]:
    """Write ``server.properties`` and ``log4j2.properties`` into ``state_dir``; return their paths."""
    state_dir.mkdir(parents=True, exist_ok=True)
    server = state_dir / "server.properties"
    server.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
    log4j = state_dir / "log4j2.properties"
    log4j.write_text(LOG4J)
    return server, log4j
