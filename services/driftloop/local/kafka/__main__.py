"""The local broker's command line (what `make kafka-up` / `kafka-down` / `kafka-jars` run).

    python -m driftloop.local.kafka up      # start, wait for readiness, create topics, print bootstrap
    python -m driftloop.local.kafka down    # stop; no java process is left behind
    python -m driftloop.local.kafka status  # exit status 0 when running, 1 when not
    python -m driftloop.local.kafka jars    # fetch (or reuse) the jars; print their folder
"""

from __future__ import annotations

import argparse

from driftloop.core.topics import ensure_topics
from driftloop.local.kafka.broker import LocalKafka


def up(broker: LocalKafka) -> int:
    if broker.running_pid() is None:
        broker.start()
        broker.detach()
    else:
        ensure_topics(broker.kafka_settings())
    print(broker.bootstrap)
    return 0


def down(broker: LocalKafka) -> int:
    broker.stop()
    print("stopped")
    return 0


def status(broker: LocalKafka) -> int:
    pid = broker.running_pid()
    print(f"running pid={pid} bootstrap={broker.bootstrap}" if pid else "not running")
    return 0 if pid else 1


def jars(broker: LocalKafka) -> int:
    print(broker.ensure_jars())
    return 0


COMMANDS = {"up": up, "down": down, "status": status, "jars": jars}


def main(argv: list[str] | None = None, broker: LocalKafka | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m driftloop.local.kafka", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=sorted(COMMANDS))
    args = parser.parse_args(argv)
    return COMMANDS[args.command](broker or LocalKafka())


if __name__ == "__main__":
    raise SystemExit(main())
