"""``python -m driftloop.retrainer [COMMAND]`` (settings from DRIFTLOOP_RETRAINER_*).

    serve                       consume RetrainTriggers (default)
    retrain --trigger FILE      run one trigger given as JSON (protobuf JSON of RetrainTrigger)
    versions [--alias A]        list registered versions with status and gate verdict
    outcomes                    what happened to each trigger
    promote ALIAS VERSION       publish a promotion by hand (the version must be registered)
    rollback ALIAS VERSION      route ALIAS back to VERSION by hand (marks the current one rolled back)
    bench-base DIR [DIR ...]    compare candidate base models on a sample of the task before fine-tuning
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m driftloop.retrainer", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command")
    sub.add_parser("serve")
    r = sub.add_parser("retrain")
    r.add_argument("--trigger", type=Path, required=True)
    v = sub.add_parser("versions")
    v.add_argument("--alias", default="")
    sub.add_parser("outcomes")
    p = sub.add_parser("promote")
    p.add_argument("alias")
    p.add_argument("version")
    b = sub.add_parser("rollback")
    b.add_argument("alias")
    b.add_argument("version")
    bb = sub.add_parser("bench-base")
    bb.add_argument("models", nargs="+", type=Path)
    bb.add_argument("--sample", type=int, default=200)
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    from driftloop.retrainer.settings import RetrainerSettings

    settings = RetrainerSettings()
    command = a.command or "serve"
    if command == "versions":
        from driftloop.retrainer.registry import Registry

        for ver in Registry(settings.adapter_root).versions(a.alias):
            gate = ver.metadata.get("gate", {})
            verdict = "passed" if gate.get("passed") else "rejected"
            print(f"{ver.alias}/{ver.version}\t{ver.status}\tparent={ver.metadata.get('parent') or '-'}\t"
                  f"gate={verdict}\tdata={ver.metadata.get('data_hash', '')[:12]}")
        return 0
    if command == "outcomes":
        from driftloop.retrainer.service import outcomes_json

        print(outcomes_json(settings))
        return 0
    if command == "bench-base":
        from driftloop.retrainer.bench_base import compare

        print(compare(a.models, settings, a.sample))
        return 0

    from driftloop.retrainer.service import Retrainer

    retrainer = Retrainer(settings)
    if command == "retrain":
        from google.protobuf import json_format

        from driftloop.retrainer.pipeline import TriggerRefused
        from driftloop.v1 import events_pb2

        trigger = json_format.Parse(a.trigger.read_text(), events_pb2.RetrainTrigger())
        try:
            retrainer.pipeline.admit(trigger)  # the same checks as a trigger from Kafka
        except TriggerRefused as exc:
            print(f"error: trigger refused ({exc.reason}): {exc}", file=sys.stderr)
            retrainer.close()
            return 2
        outcome = retrainer.pipeline.run(trigger)
        print(json.dumps(outcome.__dict__, indent=2))
        retrainer.close()
        return 0 if outcome.result in ("promoted", "rejected", "rolled_back") else 1
    if command in ("promote", "rollback"):
        from driftloop.core import ids

        try:
            ids.ALIAS.check(a.alias)
            ids.VERSION.check(a.version)
        except ids.InvalidIdentifier as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        pipe = retrainer.pipeline
        try:
            pipe.registry.get(a.alias, a.version)  # must exist
            route = pipe.client.route(a.alias)
            # By hand, straight to stable (never a canary): the guards of the loop's own steps apply.
            pipe.rollouts.publish(pipe.rollouts.plan(a.alias, command, a.version, reason="by hand"))
        except (FileNotFoundError, ValueError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            retrainer.close()
            return 1
        if command == "promote":
            pipe.registry.set_status(a.alias, a.version, "promoted", "by hand")
        elif route is not None and route.stable_version != a.version and \
                pipe.registry.exists(a.alias, route.stable_version):
            pipe.registry.set_status(a.alias, route.stable_version, "rolled_back", "by hand")
        retrainer.close()
        return 0

    from prometheus_client import start_http_server

    from driftloop.core import failpoints
    if armed := failpoints.armed():  # raises on a misspelt name, before any work
        logging.getLogger(__name__).warning("failpoints armed (tests only): %s", ", ".join(sorted(armed)))
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    server, _ = start_http_server(settings.metrics_port, addr=settings.host, registry=retrainer.registry)
    print(f"READY metrics={settings.host}:{server.server_port}", flush=True)
    try:
        retrainer.run(stop)
    finally:
        retrainer.close()
        server.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
