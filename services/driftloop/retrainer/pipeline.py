"""One retraining run for one trigger, as named stages: dataset → train → gate → register → release
(canary, then promote or roll back) or reject. The version name derives from the trigger id
(``triggers.version_for``), so a run restarted after a crash finds its own version (or its
absence) and never produces a second one. Each stage's duration is
``driftloop_retrainer_stage_duration_seconds{stage}``; its files are in the run's directory."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

from driftloop.core import ids
from driftloop.core.metrics import RetrainerMetrics
from driftloop.retrainer.augment import augment
from driftloop.retrainer.data import Example
from driftloop.retrainer.dataset import Dataset, Datasets, write_jsonl
from driftloop.retrainer.evaluate import GateCriteria, GateReport
from driftloop.retrainer.gating import Gate
from driftloop.retrainer.inference_client import RouteReader
from driftloop.retrainer.registry import Registry
from driftloop.retrainer.release import Release
from driftloop.retrainer.rollouts import FINAL, Journal
from driftloop.retrainer.settings import RetrainerSettings
from driftloop.retrainer.train import TrainConfig, TrainResult
from driftloop.retrainer.triggers import RunOutcome, outcome, version_for
from driftloop.v1 import events_pb2


class Trainer(Protocol):
    def __call__(self, base_dir: Path, train: list[Example], val: list[Example], out_dir: Path,
                 cfg: TrainConfig) -> TrainResult: ...


@dataclass
class Run:
    trigger: events_pb2.RetrainTrigger
    version: str
    dir: Path  # state_dir/runs/<trigger id>: criteria.json, dataset.json, stale.jsonl, gate.md, rollout.json

    @property
    def alias(self) -> str:
        return self.trigger.adapter_alias

    @property
    def journal(self) -> Journal:
        return Journal(self.dir / "rollout.json")

    def write(self, name: str, text: str) -> None:
        (self.dir / name).write_text(text)


class Pipeline:
    def __init__(self, settings: RetrainerSettings, metrics: RetrainerMetrics, registry: Registry,
                 routes: RouteReader, datasets: Datasets, trainer: Trainer, gate: Gate, release: Release) -> None:
        self.s = settings
        self.m = metrics
        self.registry = registry
        self.routes = routes
        self.datasets = datasets
        self.trainer = trainer
        self.gate = gate
        self.release = release

    def run(self, trigger: events_pb2.RetrainTrigger) -> RunOutcome:
        run = self._open(trigger)
        if self.registry.exists(run.alias, run.version):  # restarted after a crash: continue, never retrain
            return self._resume(run)
        run.dir.mkdir(parents=True, exist_ok=True)
        criteria = self._fix_criteria(run)
        data = self._dataset(run)
        if data.info["corrections"] < trigger.min_corrections:  # an attempt after a rejection, no new evidence
            return outcome(trigger, run.version, "skipped",
                           f"attempt {trigger.attempt}: {data.info['corrections']} corrections, "
                           f"{trigger.min_corrections} wanted (new ones since the rejected attempt) within "
                           f"{self.s.retry_wait_s:.0f} s: the same data would give the same verdict")
        if not data.enough(self.s.min_train_rows):
            return outcome(trigger, run.version, "failed", f"not enough clean data: {data.info['summary']}")
        staging, training = self._train(run, data)
        report = self._gate(run, staging, data, criteria)
        self._register(run, staging, data, training, report, criteria)
        if not report.passed:
            return self._reject(run, report, data)
        if self.s.release_policy == "approve":
            return self._await_approval(run, report)
        return self.release.run(run.journal, trigger, run.version)

    def release_approved(self, trigger: events_pb2.RetrainTrigger, version: str) -> RunOutcome:
        """An operator approved ``version`` (release policy ``approve``): canary → promote or roll back,
        journaled in its run's directory like any release."""
        run = self._open(trigger)
        v = self.registry.get(run.alias, version)
        if v.status != "awaiting_approval" and run.journal.last() is None:
            raise ValueError(f"{run.alias}/{version} is {v.status}, not awaiting approval")
        return self.release.run(run.journal, trigger, version)

    def abandon(self, trigger: events_pb2.RetrainTrigger) -> str:
        """After a run failed for good: roll back the canary it left taking traffic, if any (see
        ``Release.abandon``). Returns a note for the outcome's detail."""
        run = self._open(trigger)
        return self.release.abandon(run.journal, trigger, run.version)

    # -- stages ------------------------------------------------------------------------------------
    def _fix_criteria(self, run: Run) -> GateCriteria:
        criteria = self.s.gate_criteria()
        run.write("criteria.json", json.dumps(asdict(criteria), indent=2))  # fixed before training
        return criteria

    def _dataset(self, run: Run) -> Dataset:
        with self.m.stage_seconds.labels("dataset").time():
            data = self.datasets.build(run.trigger)
            for name, part in data.parts.items():
                self.m.dataset_rows.labels(name).set(len(part))
            for rule, n in data.info["cleaning"]["removed"].items():
                self.m.dataset_rows.labels(f"removed_{rule}").set(n)
            run.write("dataset.json", json.dumps(data.info, indent=2))
            # For the data owner: each stale row with the correction that contradicts it (always written,
            # empty when none). Curated rows passed the PII rule before this one.
            run.write("stale.jsonl", "".join(json.dumps(x.to_dict()) + "\n" for x in data.stale))
            for x in data.stale:
                self.m.stale_rows.labels(run.alias, x.source).inc()
        return data

    def _train(self, run: Run, data: Dataset) -> tuple[Path, TrainResult]:
        staging = self.registry.stage(run.version)
        train = augment(data.parts["train"], self.s.augment_variants, self.s.seed)
        data.info["augmented_rows"] = len(train) - len(data.parts["train"])
        with self.m.stage_seconds.labels("training").time():
            result = self.trainer(self.s.base_model, train, data.parts["val"], staging, self.s.train_config())
        write_jsonl(staging / "dataset.jsonl", data.parts["train"] + data.parts["val"])  # later runs' replay
        return staging, result

    def _gate(self, run: Run, staging: Path, data: Dataset, criteria: GateCriteria) -> GateReport:
        with self.m.stage_seconds.labels("gate").time():
            report = self.gate(run.alias, run.version, self.registry.relative(staging), data.parts["test"], criteria)
        self.m.gate.labels(run.alias, "passed" if report.passed else "rejected").inc()
        run.write("gate.md", report.summary() + "\n")
        return report

    def _register(self, run: Run, staging: Path, data: Dataset, training: TrainResult, report: GateReport,
                  criteria: GateCriteria) -> None:
        serving = self.routes.route(run.alias)
        metadata = {"parent": serving.stable_version if serving else "", "trigger_id": run.trigger.trigger_id,
                    "dedupe_key": run.trigger.dedupe_key, "data_hash": data.hash, "dataset": data.info,
                    "training": asdict(training), "gate": report.to_dict(), "gate_summary": report.summary(),
                    "criteria": asdict(criteria), "base_model": str(self.s.base_model),
                    "prompt": asdict(self.s.prompt())}  # how it was trained and gated: its input format
        self.registry.register(run.alias, run.version, staging, metadata)

    def _await_approval(self, run: Run, report: GateReport) -> RunOutcome:
        self.registry.set_status(run.alias, run.version, "awaiting_approval", "release policy: approve")
        return outcome(run.trigger, run.version, "awaiting_approval",
                       f"{report.summary()}\nNext: an operator runs `python -m driftloop.retrainer approve {run.alias} "
                       f"{run.version}` (canary, then promotion) or `reject {run.alias} {run.version}`.")

    def _reject(self, run: Run, report: GateReport, data: Dataset) -> RunOutcome:
        self.registry.set_status(run.alias, run.version, "rejected", "acceptance gate")
        return outcome(run.trigger, run.version, "rejected", f"{report.summary()}\nData: {data.info['summary']}; "
                       f"{data.info['corrections']} corrections, {data.info['confirmed']} confirmed, "
                       f"{data.info['curated']} curated, {data.info['replay']} replay",
                       data.info["corrections"])

    # -- a run restarted after its version was registered -------------------------------------------
    def _open(self, trigger: events_pb2.RetrainTrigger) -> Run:
        runs = self.s.state_dir / "runs"
        runs.mkdir(parents=True, exist_ok=True)
        return Run(trigger, version_for(trigger.trigger_id), ids.path_in(runs, trigger.trigger_id))

    def _resume(self, run: Run) -> RunOutcome:
        v = self.registry.get(run.alias, run.version)
        corrections = v.metadata.get("dataset", {}).get("corrections", 0)
        if v.status == "awaiting_approval":  # the operator's to release, not this run's
            return outcome(run.trigger, run.version, "awaiting_approval", v.metadata.get("gate_summary", ""))
        if v.status in FINAL:  # a rejection keeps its report: what follows it needs the reason and the data
            detail = v.metadata.get("gate_summary", "") if v.status == "rejected" else ""
            return outcome(run.trigger, run.version, v.status, detail or "already finished", corrections)
        if not v.metadata.get("gate", {}).get("passed"):
            self.registry.set_status(v.alias, run.version, "rejected", "acceptance gate")
            return outcome(run.trigger, run.version, "rejected", v.metadata.get("gate_summary", "acceptance gate"),
                           corrections)
        return self.release.run(run.journal, run.trigger, run.version)
