"""A real single-node Apache Kafka broker (KRaft) for tests and the local demo.

The broker's jars come from Maven Central through ``tools/kafka/pom.xml`` and are cached under
``.cache/kafka-jars/<hash of the pom>`` (``jars``). State (data, logs, pid) lives in ``state_dir``.
``settings``: LocalKafkaSettings; ``config``: the files the broker reads; ``broker``: the process
(LocalKafka); ``__main__``: the command line (``python -m driftloop.local.kafka up|down|status|jars``).
"""

from driftloop.local.kafka.broker import LocalKafka
from driftloop.local.kafka.jars import BrokerError
from driftloop.local.kafka.settings import LocalKafkaSettings
from driftloop.local.ports import free_port

__all__ = ["BrokerError", "LocalKafka", "LocalKafkaSettings", "free_port"]
