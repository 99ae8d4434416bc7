"""The trigger consumer's loop with a fake consumer: what is run, dead-lettered, skipped, committed."""

from __future__ import annotations

import threading
from pathlib import Path

import grpc
import pytest
from prometheus_client import CollectorRegistry

from driftloop.core.metrics import RetrainerMetrics
from driftloop.retrainer.outcomes import Outcomes
from driftloop.retrainer.service import Retrainer
from driftloop.retrainer.settings import RetrainerSettings
from driftloop.retrainer.triggers import Admission, RunOutcome, TriggerRefused
from driftloop.v1 import events_pb2
from tests.unit.retrainer import fakes


class Pipeline:
    def __init__(self) -> None:
        self.runs: list[str] = []

    def run(self, trigger) -> RunOutcome:
        self.runs.append(trigger.trigger_id)
        return RunOutcome(trigger.trigger_id, trigger.adapter_alias, "r-1", "promoted", "canary healthy")

    def abandon(self, trigger) -> str:
        return ""


class Unreachable(grpc.RpcError):
    def code(self):
        return grpc.StatusCode.UNAVAILABLE


class Loop:
    def __init__(self, tmp_path: Path, records, admit=lambda t: None) -> None:
        self.stop = threading.Event()
        self.consumer = fakes.Consumer(records, self.stop)
        self.letters: list[tuple[int, str]] = []
        self.outcomes = Outcomes(tmp_path / "outcomes.sqlite")
        self.metrics = RetrainerMetrics(CollectorRegistry())
        self.pipeline = Pipeline()
        self.retrainer = Retrainer(RetrainerSettings(retry_backoff_s=0), self.metrics, self.consumer,
                                   lambda record, kind, reason: self.letters.append((record.offset, kind)),
                                   self.outcomes, admit, self.pipeline, sleep=lambda s: None)

    def run(self) -> Loop:
        self.retrainer.run(self.stop)
        self.retrainer.close()
        return self

    def triggers(self, result: str) -> float:
        return self.metrics.registry.get_sample_value("driftloop_retrainer_triggers_total", {"result": result})

    def results(self) -> dict[str, str]:
        return {o["trigger_id"]: o["result"] for o in self.outcomes.all()}


def test_a_trigger_runs_once_and_its_outcome_is_durable_before_the_commit(tmp_path: Path) -> None:
    t = fakes.trigger("a1")
    loop = Loop(tmp_path, [fakes.record(t, 0), fakes.record(t, 1)]).run()  # the second: a redelivery
    assert loop.pipeline.runs == ["a1"]
    assert loop.results() == {"a1": "promoted"} and loop.consumer.commits == [1, 2]
    assert (loop.triggers("accepted"), loop.triggers("duplicate")) == (1, 1)
    assert loop.metrics.registry.get_sample_value("driftloop_retrainer_runs_total",
                                                  {"adapter_alias": "qa", "outcome": "promoted"}) == 1
    assert not loop.consumer.raw.paused  # resumed after the run


def test_an_undecodable_record_is_dead_lettered_and_committed(tmp_path: Path) -> None:
    loop = Loop(tmp_path, [fakes.record(None, 0), fakes.record(events_pb2.RetrainTrigger(), 1)]).run()
    assert [kind for _, kind in loop.letters][1] == "missing_field"
    assert loop.consumer.commits == [1, 2] and loop.triggers("invalid") == 2 and loop.pipeline.runs == []


@pytest.mark.parametrize("reason", ["stale", "unknown_alias", "invalid_identifier"])
def test_a_refused_trigger_is_dead_lettered_recorded_and_committed(tmp_path: Path, reason: str) -> None:
    def admit(trigger):
        raise TriggerRefused(reason, "no")

    loop = Loop(tmp_path, [fakes.record(fakes.trigger("b1"), 0)], admit).run()
    assert loop.letters == [(0, reason)] and loop.consumer.commits == [1] and loop.triggers(reason) == 1
    assert loop.results() == ({} if reason == "invalid_identifier" else {"b1": "skipped"})
    assert loop.pipeline.runs == []


def test_an_unreachable_replica_leaves_the_trigger_to_be_read_again(tmp_path: Path) -> None:
    def admit(trigger):
        raise Unreachable()

    loop = Loop(tmp_path, [fakes.record(fakes.trigger("c1"), 7)], admit).run()
    assert [offset for _, offset in loop.consumer.raw.seeks] == [7]
    assert loop.consumer.commits == [] and loop.letters == [] and loop.results() == {}


def test_a_handler_error_is_dead_lettered_never_a_crash_loop(tmp_path: Path) -> None:
    def admit(trigger):
        raise RuntimeError("a bug")

    loop = Loop(tmp_path, [fakes.record(fakes.trigger("d1"), 3)], admit).run()
    assert loop.letters == [(3, "handler_error")] and loop.consumer.commits == [4]


@pytest.mark.parametrize("change, reason", [
    ({"created": 1_699_990_000}, "stale"), ({"alias": "nope"}, "unknown_alias"), ({"serving": "v2"}, "stale"),
    ({"trigger_id": "a/b"}, "invalid_identifier"), ({}, None), ({"registered": True, "serving": "v2"}, None)])
def test_admission(change: dict, reason: str | None) -> None:
    replica = fakes.Replica("qa", change.get("serving", "v1"))
    t = fakes.trigger(change.get("trigger_id", "e1"), change.get("alias", "qa"))
    t.created_time.FromSeconds(int(change.get("created", 1_700_000_000)))
    admit = Admission(3600, lambda alias, version: change.get("registered", False), replica,
                      clock=lambda: 1_700_000_100.0)
    if reason is None:
        admit(t)  # a trigger whose run registered its version resumes, whatever serves now
    else:
        with pytest.raises(TriggerRefused) as refused:
            admit(t)
        assert refused.value.reason == reason
