"""One retraining run for one trigger: dataset → clean → split → train → gate → register → canary →
promote or roll back. The version name derives from the trigger id, so a run restarted after a
crash finds its own version (or its absence) and never produces a second one."""

from __future__ import annotations

import hashlib
import json
import logging
import random
import shutil
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import grpc

from driftloop.core import ids
from driftloop.core.kafka import EventProducer
from driftloop.core.metrics import RetrainerMetrics
from driftloop.retrainer import collect
from driftloop.retrainer.data import Example, clean, data_hash, split
from driftloop.retrainer.evaluate import Answerer, Evaluation, GateReport, evaluate, gate
from driftloop.retrainer.registry import Registry
from driftloop.retrainer.rollouts import FINAL, Journal, Rollouts
from driftloop.retrainer.settings import RetrainerSettings
from driftloop.retrainer.train import render_prompt, train_lora
from driftloop.v1 import events_pb2, inference_pb2, inference_pb2_grpc

log = logging.getLogger(__name__)


@dataclass
class RunOutcome:
    trigger_id: str
    alias: str
    version: str
    result: str  # promoted, rejected, rolled_back, failed, skipped
    detail: str = ""


class TriggerRefused(ValueError):
    """A trigger that must not start a run; ``reason`` is the dead letter's error type."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def check_trigger(t: events_pb2.RetrainTrigger) -> None:
    """The identifier rules for a trigger's fields, before any of them becomes a name or a path."""
    try:
        ids.TRIGGER_ID.check(t.trigger_id)
        ids.ALIAS.check(t.adapter_alias)
        ids.VERSION.check(t.adapter_version, required=False)
        ids.MODEL.check(t.model, required=False)
    except ids.InvalidIdentifier as exc:
        raise TriggerRefused("invalid_identifier", str(exc)) from None
    if len(t.dedupe_key) > 256 or not t.dedupe_key.isprintable():
        raise TriggerRefused("invalid_identifier", "dedupe_key must be printable and at most 256 characters")


def gate_alias(alias: str) -> str:
    """The private alias a candidate is loaded under while the gate measures it (never routed)."""
    return f"gate-{hashlib.sha256(alias.encode()).hexdigest()[:16]}"


def version_for(trigger_id: str) -> str:
    return f"r-{trigger_id[:12]}"


def load_jsonl(path: Path | None, source: str) -> list[Example]:
    if path is None or not Path(path).exists():
        return []
    rows = []
    for line in Path(path).read_text().splitlines():
        if line.strip():
            d = json.loads(line)
            rows.append(Example(d["question"], d["answer"], source, d.get("slice", "")))
    return rows


class InferenceClient:
    """The gate measures candidates through the real engine of a running inference replica."""

    def __init__(self, address: str, token: str | None, template: str, concurrency: int = 8,
                 tls: bool = False, ca_file: Path | None = None, server_name: str = "",
                 admin_address: str = "") -> None:
        self.concurrency = concurrency

        def dial(target: str) -> grpc.Channel:
            if tls:  # whenever inference serves TLS; the CA defaults to the system's roots
                creds = grpc.ssl_channel_credentials(root_certificates=Path(ca_file).read_bytes() if ca_file else None)
                options = [("grpc.ssl_target_name_override", server_name)] if server_name else []
                return grpc.secure_channel(target, creds, options=options)
            return grpc.insecure_channel(target)

        self.channel = dial(address)
        self.admin_channel = dial(admin_address) if admin_address and admin_address != address else self.channel
        self.inference = inference_pb2_grpc.InferenceStub(self.channel)
        self.admin = inference_pb2_grpc.AdapterAdminStub(self.admin_channel)
        self.md = (("authorization", f"Bearer {token}"),) if token else ()
        self.template = template

    def answerer(self, alias: str = "", version: str = "") -> Answerer:
        """Greedy answers through the engine, ``concurrency`` requests in flight (the engine batches
        them, as it does live traffic); each answer's own latency is measured."""
        def one(q: str) -> tuple[str, float]:
            t0 = time.perf_counter()
            r = self.inference.Generate(inference_pb2.GenerateRequest(
                prompt=render_prompt(q, self.template), adapter_alias=alias, adapter_version=version,
                sampling=inference_pb2.SamplingParams(max_tokens=32, temperature=0.0),
                tags={"source": "retrainer-gate"}), metadata=self.md, timeout=60)  # reserved tag: token
            return r.text.strip(), time.perf_counter() - t0

        def answer(questions: Sequence[str]) -> tuple[list[str], list[float]]:
            with ThreadPoolExecutor(self.concurrency) as pool:
                got = list(pool.map(one, questions))
            return [t for t, _ in got], [lat for _, lat in got]
        return answer

    def route(self, alias: str) -> inference_pb2.AdapterRoute | None:
        listed = self.admin.ListAdapters(inference_pb2.ListAdaptersRequest(adapter_alias=alias), metadata=self.md,
                                         timeout=10)
        return listed.routes[0] if listed.routes else None

    def load(self, alias: str, version: str, path: str) -> None:
        self.admin.LoadAdapter(inference_pb2.LoadAdapterRequest(adapter_alias=alias, version=version, path=path),
                               metadata=self.md, timeout=120)

    def unload(self, alias: str, version: str) -> None:
        self.admin.UnloadAdapter(inference_pb2.UnloadAdapterRequest(adapter_alias=alias, version=version),
                                 metadata=self.md, timeout=120)


class Pipeline:
    def __init__(self, settings: RetrainerSettings, metrics: RetrainerMetrics, producer: EventProducer,
                 client: InferenceClient, canary_observer: Callable[..., tuple[bool, str]] | None = None) -> None:
        self.s = settings
        self.m = metrics
        self.producer = producer
        self.client = client
        self.registry = Registry(settings.adapter_root)
        self.rollouts = Rollouts(producer, client, self.registry, metrics)
        self.observe_canary = canary_observer

    # -- stages --------------------------------------------------------------------------------
    def dataset(self, trigger: events_pb2.RetrainTrigger) -> tuple[list[Example], dict]:
        episode_start = trigger.window_start.seconds or time.time()
        since = episode_start - self.s.lookback_s
        deadline = time.monotonic() + self.s.collect_wait_s
        while True:  # too few corrections to learn from: wait (bounded) while riders send more
            live = collect.collect_feedback(self.s.kafka, trigger.adapter_alias, since, self.s.prompt_template,
                                            episode_start if self.s.use_confirmed else None)
            corrections = [x for x in live if x.source == "feedback"]
            if len(corrections) >= self.s.min_corrections or time.monotonic() >= deadline:
                break
            log.info("trigger %s: %d corrections, waiting for %d", trigger.trigger_id, len(corrections),
                     self.s.min_corrections)
            time.sleep(5)
        confirmed = [x for x in live if x.source == "confirmed"]
        curated = load_jsonl(self.s.curated_data, "curated")
        replay_pool: list[Example] = []
        for v in self.registry.versions(trigger.adapter_alias):
            replay_pool += load_jsonl(v.path / "dataset.jsonl", "replay")
        rng = random.Random(self.s.seed)
        n_replay = int(self.s.replay_share * max(len(corrections), 1))
        replay = rng.sample(replay_pool, min(n_replay, len(replay_pool)))
        rows, report = clean(corrections + confirmed + curated + replay)
        fresh = sum(r.source == "feedback" for r in rows)
        keep = len(rows) - fresh
        info = {"corrections": len(corrections), "confirmed": len(confirmed), "curated": len(curated),
                "replay": len(replay), "fresh_rows": fresh, "keep_rows": keep,
                "cleaning": asdict(report), "summary": report.summary()}
        if fresh and keep < self.s.replay_ratio * fresh:
            info["warning"] = (f"only {keep} rows of unchanged behaviour for {fresh} corrections (replay ratio "
                               f"{self.s.replay_ratio}): each is rehearsed more often, and slices they do not cover "
                               "may be forgotten; add curated rows or confirmed answers")
            log.warning("trigger %s: %s", trigger.trigger_id, info["warning"])
        return rows, info

    def run_dir(self, trigger: events_pb2.RetrainTrigger) -> Path:
        runs = self.s.state_dir / "runs"
        runs.mkdir(parents=True, exist_ok=True)
        return ids.path_in(runs, trigger.trigger_id)

    def admit(self, trigger: events_pb2.RetrainTrigger) -> None:
        """Checks before any work: identifiers, the alias is served, the trigger is not stale.
        Raises TriggerRefused (the record is dead-lettered; nothing trains); a replica that cannot be
        reached raises grpc.RpcError (transient: the trigger is retried)."""
        check_trigger(trigger)
        age = time.time() - (trigger.created_time.seconds or time.time())
        if age > self.s.max_trigger_age_s:
            raise TriggerRefused("stale", f"trigger is {age:.0f} s old (max_trigger_age_s "
                                          f"{self.s.max_trigger_age_s:.0f})")
        if self.registry.exists(trigger.adapter_alias, version_for(trigger.trigger_id)):
            return  # this trigger's own run already registered its version: resume it
        route = self.client.route(trigger.adapter_alias)
        if route is None:
            raise TriggerRefused("unknown_alias", f"inference routes no alias {trigger.adapter_alias!r}")
        if trigger.adapter_version and route.stable_version != trigger.adapter_version:
            raise TriggerRefused("stale", f"the episode began on {trigger.adapter_version}; "
                                          f"{trigger.adapter_alias} now serves {route.stable_version}")

    def run(self, trigger: events_pb2.RetrainTrigger) -> RunOutcome:
        alias, version = trigger.adapter_alias, version_for(trigger.trigger_id)
        run_dir = self.run_dir(trigger)
        if self.registry.exists(alias, version):  # restarted after a crash: continue, never retrain
            return self._resume(trigger, version)
        run_dir.mkdir(parents=True, exist_ok=True)
        criteria = self.s.gate_criteria()
        (run_dir / "criteria.json").write_text(json.dumps(asdict(criteria), indent=2))  # fixed before training
        t0 = time.perf_counter()
        rows, dataset_info = self.dataset(trigger)
        parts = split(rows)
        for name, part in parts.items():
            self.m.dataset_rows.labels(name).set(len(part))
        for rule, n in dataset_info["cleaning"]["removed"].items():
            self.m.dataset_rows.labels(f"removed_{rule}").set(n)
        (run_dir / "dataset.json").write_text(json.dumps(dataset_info, indent=2))
        self.m.stage_seconds.labels("dataset").observe(time.perf_counter() - t0)
        if len(parts["train"]) < 10 or not parts["val"] or not parts["test"]:
            return RunOutcome(trigger.trigger_id, alias, version, "failed",
                              f"not enough clean data: {dataset_info['summary']}")
        staging_root = self.s.adapter_root / ".staging"
        staging_root.mkdir(parents=True, exist_ok=True)
        staging = ids.path_in(staging_root, version)
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        t0 = time.perf_counter()
        result = train_lora(self.s.base_model, parts["train"], parts["val"], staging, self.s.train_config())
        self.m.stage_seconds.labels("training").observe(time.perf_counter() - t0)
        with (staging / "dataset.jsonl").open("w") as f:
            for ex in parts["train"] + parts["val"]:
                f.write(json.dumps({"question": ex.question, "answer": ex.answer, "slice": ex.slice}) + "\n")

        t0 = time.perf_counter()
        report = self._gate(alias, version, staging, parts["test"])
        self.m.stage_seconds.labels("gate").observe(time.perf_counter() - t0)
        self.m.gate.labels(alias, "passed" if report.passed else "rejected").inc()
        (run_dir / "gate.md").write_text(report.summary() + "\n")
        serving = self.client.route(alias)
        metadata = {"parent": serving.stable_version if serving else "", "trigger_id": trigger.trigger_id,
                    "dedupe_key": trigger.dedupe_key, "data_hash": data_hash(rows), "dataset": dataset_info,
                    "training": asdict(result), "gate": report.to_dict(), "gate_summary": report.summary(),
                    "criteria": asdict(criteria), "base_model": str(self.s.base_model)}
        self.registry.register(alias, version, staging, metadata)
        if not report.passed:
            self.registry.set_status(alias, version, "rejected", "acceptance gate")
            return RunOutcome(trigger.trigger_id, alias, version, "rejected", report.summary())
        return self._rollout(trigger, version)

    def _gate(self, alias: str, version: str, staging: Path, test: list[Example]) -> GateReport:
        eval_alias = gate_alias(alias)
        rel = staging.relative_to(self.s.adapter_root).as_posix()
        self.client.load(eval_alias, version, rel)
        t0 = time.perf_counter()
        try:
            candidate: Evaluation = evaluate(self.client.answerer(eval_alias, version), test, self.s.seed)
        finally:
            self.client.unload(eval_alias, version)
        log.info("gate %s/%s: candidate measured in %.0f s (test EM %.3f)", alias, version,
                 time.perf_counter() - t0, candidate.test.exact_match)
        t0 = time.perf_counter()
        route = self.client.route(alias)
        serving = evaluate(self.client.answerer(alias if route else "", route.stable_version if route else ""),
                           test, self.s.seed)
        log.info("gate %s/%s: serving version measured in %.0f s (test EM %.3f)", alias, version,
                 time.perf_counter() - t0, serving.test.exact_match)
        report = gate(candidate, serving, self.s.gate_criteria())
        for role, ev in (("candidate", candidate), ("serving", serving)):
            self.m.gate_score.labels(alias, "exact_match", role).set(ev.test.exact_match)
            self.m.gate_score.labels(alias, "regression_exact_match", role).set(ev.regression.exact_match)
            self.m.gate_score.labels(alias, "corrections_exact_match", role).set(ev.fresh.exact_match)
        return report

    def _rollout(self, trigger: events_pb2.RetrainTrigger, version: str) -> RunOutcome:
        """Canary → observe → promote or roll back, each step journaled before it is published, so a
        retry continues where the last try stopped (see retrainer/rollouts.py)."""
        alias = trigger.adapter_alias
        journal = Journal(self.run_dir(trigger) / "rollout.json")
        step = journal.last()
        t0 = time.perf_counter()
        if step is None:
            route = self.client.route(alias)
            if route is None:  # nothing routed yet: the first version goes straight to stable
                self.rollouts.take(journal, self.rollouts.plan(alias, "promote", version, trigger_id=trigger.trigger_id,
                                                               reason="first version of the alias"), version)
                self.m.last_success.labels(alias).set(time.time())
                return RunOutcome(trigger.trigger_id, alias, version, "promoted", "first version")
            step = self.rollouts.take(journal, self.rollouts.plan(
                alias, "canary", route.stable_version, version, self.s.canary_weight, trigger.trigger_id,
                f"weight {self.s.canary_weight}"), version)
        else:
            step = self.rollouts.finish(journal, version)  # a retry: carry out what was journaled last
        if step.action == "canary":
            stable = step.stable
            ok, detail = self.observe_canary(alias, stable, version) if self.observe_canary else (True, "not observed")
            self.m.stage_seconds.labels("canary").observe(time.perf_counter() - t0)
            if ok:
                step = self.rollouts.take(journal, self.rollouts.plan(alias, "promote", version,
                                                                      trigger_id=trigger.trigger_id, reason=detail),
                                          version)
            else:
                step = self.rollouts.take(journal, self.rollouts.plan(alias, "rollback", stable,
                                                                      trigger_id=trigger.trigger_id, reason=detail),
                                          version)
        if step.action == "promote":
            self.m.last_success.labels(alias).set(time.time())
            return RunOutcome(trigger.trigger_id, alias, version, "promoted", step.reason)
        return RunOutcome(trigger.trigger_id, alias, version, "rolled_back", step.reason)

    def abandon(self, trigger: events_pb2.RetrainTrigger) -> str:
        """After a run failed for good: if its version is out as a canary, route all traffic back to
        stable and record the version as rolled back. Returns a note for the outcome's detail."""
        alias, version = trigger.adapter_alias, version_for(trigger.trigger_id)
        journal = Journal(self.run_dir(trigger) / "rollout.json")
        step = journal.last()
        if step is None or step.action != "canary" or not self.registry.exists(alias, version):
            return ""
        if self.registry.get(alias, version).status in FINAL:
            return ""
        self.rollouts.take(journal, self.rollouts.plan(alias, "rollback", step.stable, trigger_id=trigger.trigger_id,
                                                       reason="run failed during the canary"), version)
        return f"; canary {version} rolled back"

    def _resume(self, trigger: events_pb2.RetrainTrigger, version: str) -> RunOutcome:
        v = self.registry.get(trigger.adapter_alias, version)
        if v.status in FINAL:
            return RunOutcome(trigger.trigger_id, v.alias, version, v.status, "already finished")
        if not v.metadata.get("gate", {}).get("passed"):
            self.registry.set_status(v.alias, version, "rejected", "acceptance gate")
            return RunOutcome(trigger.trigger_id, v.alias, version, "rejected", "acceptance gate")
        return self._rollout(trigger, version)
