"""``python -m driftloop.retrainer [COMMAND]`` (settings from DRIFTLOOP_RETRAINER_*).

    serve                       consume RetrainTriggers (default)
    retrain --trigger FILE      run one trigger given as JSON (protobuf JSON of RetrainTrigger)
    versions [--alias A]        list registered versions with status and gate verdict
    outcomes                    what happened to each trigger
    promote ALIAS VERSION       publish a promotion by hand (the version must be registered)
    rollback ALIAS VERSION      route ALIAS back to VERSION by hand (marks the current one rolled back)
    pending [--alias A]         versions awaiting an operator (RELEASE_POLICY approve), with their gate report
    approve ALIAS VERSION       release a version awaiting approval: canary, then promotion or rollback
    reject ALIAS VERSION        refuse a version awaiting approval (--reason)
    review-queue --alias A      answers to label (negative without a correction, low confidence) as JSONL
    bench-base DIR [DIR ...]    compare candidate base models on a sample of the task before fine-tuning
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from driftloop.retrainer.settings import RetrainerSettings


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m driftloop.retrainer", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command")
    sub.add_parser("serve")
    sub.add_parser("retrain").add_argument("--trigger", type=Path, required=True)
    sub.add_parser("versions").add_argument("--alias", default="")
    sub.add_parser("outcomes")
    for command in ("promote", "rollback", "approve", "reject"):
        p = sub.add_parser(command)
        p.add_argument("alias")
        p.add_argument("version")
        if command == "reject":
            p.add_argument("--reason", default="", help="why, for the version's history")
    sub.add_parser("pending").add_argument("--alias", default="")
    rq = sub.add_parser("review-queue")
    rq.add_argument("--alias", required=True)
    rq.add_argument("--since-hours", type=float, default=24.0)
    rq.add_argument("--out", type=Path, required=True, help="JSONL to write (annotators fill each 'label')")
    rq.add_argument("--limit", type=int, default=1000)
    bb = sub.add_parser("bench-base")
    bb.add_argument("models", nargs="+", type=Path)
    bb.add_argument("--sample", type=int, default=200)
    return ap


def versions(a: argparse.Namespace, settings: RetrainerSettings) -> int:
    from driftloop.retrainer.registry import Registry

    for ver in Registry(settings.adapter_root).versions(a.alias):
        verdict = "passed" if ver.metadata.get("gate", {}).get("passed") else "rejected"
        print(f"{ver.alias}/{ver.version}\t{ver.status}\tparent={ver.metadata.get('parent') or '-'}\t"
              f"gate={verdict}\tdata={ver.metadata.get('data_hash', '')[:12]}")
    return 0


def outcomes(a: argparse.Namespace, settings: RetrainerSettings) -> int:
    from driftloop.retrainer.outcomes import outcomes_json

    print(outcomes_json(settings))
    return 0


def bench_base(a: argparse.Namespace, settings: RetrainerSettings) -> int:
    from driftloop.retrainer.bench_base import compare

    print(compare(a.models, settings, a.sample))
    return 0


def retrain(a: argparse.Namespace, settings: RetrainerSettings) -> int:
    """One trigger from a file, with the same checks as a trigger from Kafka."""
    from google.protobuf import json_format

    from driftloop.retrainer.triggers import TriggerRefused
    from driftloop.retrainer.wiring import open_parts
    from driftloop.v1 import events_pb2

    trigger = json_format.Parse(a.trigger.read_text(), events_pb2.RetrainTrigger())
    parts = open_parts(settings)
    try:
        parts.admit(trigger)
    except TriggerRefused as exc:
        print(f"error: trigger refused ({exc.reason}): {exc}", file=sys.stderr)
        return 2
    else:
        outcome = parts.pipeline.run(trigger)
        print(json.dumps(outcome.__dict__, indent=2))
        return 0 if outcome.result in ("promoted", "rejected", "rolled_back") else 1
    finally:
        parts.close()


def _identifiers_ok(a: argparse.Namespace) -> bool:
    """The command's alias (and version, when it has one) by the project's identifier rules; a clear
    error on stderr when not."""
    from driftloop.core import ids

    try:
        ids.ALIAS.check(a.alias)
        if hasattr(a, "version"):
            ids.VERSION.check(a.version)
    except ids.InvalidIdentifier as exc:
        print(f"error: {exc}", file=sys.stderr)
        return False
    return True


def by_hand(a: argparse.Namespace, settings: RetrainerSettings) -> int:
    """``promote`` / ``rollback``: straight to stable through the rollout topic (never a canary)."""
    from driftloop.retrainer.wiring import open_parts

    if not _identifiers_ok(a):
        return 2
    parts = open_parts(settings)
    try:
        parts.rollouts.by_hand(a.command, a.alias, a.version)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        parts.close()
    return 0


def pending(a: argparse.Namespace, settings: RetrainerSettings) -> int:
    from driftloop.retrainer.registry import Registry

    waiting = [v for v in Registry(settings.adapter_root).versions(a.alias) if v.status == "awaiting_approval"]
    for v in waiting:
        print(f"== {v.alias}/{v.version} (trigger {v.metadata.get('trigger_id', '')}; "
              f"data: {v.metadata.get('dataset', {}).get('summary', '')})\n{v.metadata.get('gate_summary', '')}\n")
    if not waiting:
        print("nothing awaits approval")
    return 0


def decide(a: argparse.Namespace, settings: RetrainerSettings) -> int:
    """``approve`` / ``reject`` a version awaiting approval. Administrative: the inference admin token
    (DRIFTLOOP_RETRAINER_INFERENCE_ADMIN_TOKEN) is checked by the inference service before anything
    changes, as for every administrative action."""
    import grpc

    from driftloop.retrainer.outcomes import Outcomes, path
    from driftloop.retrainer.triggers import outcome
    from driftloop.retrainer.wiring import open_parts
    from driftloop.v1 import events_pb2

    if not _identifiers_ok(a):
        return 2
    if settings.inference_admin_token is None:
        print("error: approve and reject need the inference admin token (DRIFTLOOP_RETRAINER_INFERENCE_ADMIN_TOKEN)",
              file=sys.stderr)
        return 2
    parts = open_parts(settings)
    try:
        try:
            parts.client.route(a.alias)  # the admin API: a wrong token stops here
        except grpc.RpcError as exc:
            print(f"error: the inference admin API refused: {exc.code().name if hasattr(exc, 'code') else exc}",
                  file=sys.stderr)
            return 2
        if not parts.registry.exists(a.alias, a.version):
            print(f"error: no version {a.alias}/{a.version}", file=sys.stderr)
            return 1
        v = parts.registry.get(a.alias, a.version)
        if v.status != "awaiting_approval":
            print(f"error: {a.alias}/{a.version} is {v.status}, not awaiting approval", file=sys.stderr)
            return 1
        print(v.metadata.get("gate_summary", ""))
        trigger = events_pb2.RetrainTrigger(trigger_id=v.metadata["trigger_id"], adapter_alias=a.alias,
                                            dedupe_key=v.metadata.get("dedupe_key", ""))
        if a.command == "reject":
            reason = f"operator: {a.reason}" if a.reason else "operator"
            parts.registry.set_status(a.alias, a.version, "rejected", reason)
            result = outcome(trigger, a.version, "rejected", reason)
        else:
            result = parts.pipeline.release_approved(trigger, a.version)
        Outcomes(path(settings)).finish(result)
        print(f"{a.alias}/{a.version}: {result.result} ({result.detail.splitlines()[0] if result.detail else ''})")
        return 0
    finally:
        parts.close()


def review_queue(a: argparse.Namespace, settings: RetrainerSettings) -> int:
    import time

    from driftloop.core.topics import FEEDBACK, PREDICTIONS
    from driftloop.retrainer import collect, review
    from driftloop.v1 import events_pb2

    if not _identifiers_ok(a):
        return 2
    since = time.time() - a.since_hours * 3600
    fb = list(collect.scan_events(settings.kafka, FEEDBACK, since, events_pb2.FeedbackEvent))
    predictions = ((p, collect.question_of(p, settings.prompt_template))
                   for p in collect.scan_events(settings.kafka, PREDICTIONS, since, events_pb2.PredictionEvent))
    items = review.queue(predictions, fb, a.alias, settings.review_max_mean_logprob, a.limit)
    review.write_queue(a.out, items)
    reasons = {r: sum(i.reason == r for i in items) for r in ("negative_no_correction", "low_confidence")}
    print(f"{len(items)} answers to review written to {a.out} ({reasons}); annotators fill 'label', then "
          f"DRIFTLOOP_RETRAINER_LABELS_DATA={a.out} trains on them as corrections")
    return 0


def serve(a: argparse.Namespace, settings: RetrainerSettings) -> int:
    from driftloop.core import failpoints
    from driftloop.core.runtime import serve_until_stopped
    from driftloop.retrainer.wiring import build_retrainer, open_parts

    if armed := failpoints.armed():  # raises on a misspelt name, before any work
        logging.getLogger(__name__).warning("failpoints armed (tests only): %s", ", ".join(sorted(armed)))
    parts = open_parts(settings)
    retrainer = build_retrainer(parts)

    def close() -> None:
        retrainer.close()
        parts.close()

    serve_until_stopped(retrainer.run, close, parts.metrics.registry, settings.host, settings.metrics_port)
    return 0


COMMANDS = {"serve": serve, "retrain": retrain, "versions": versions, "outcomes": outcomes,
            "promote": by_hand, "rollback": by_hand, "bench-base": bench_base, "pending": pending,
            "approve": decide, "reject": decide, "review-queue": review_queue}


def main(argv: list[str] | None = None) -> int:
    a = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    from driftloop.retrainer.settings import RetrainerSettings

    return COMMANDS[a.command or "serve"](a, RetrainerSettings())


if __name__ == "__main__":
    sys.exit(main())
