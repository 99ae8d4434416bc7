"""Trigger → dataset → LoRA training → gate through the real engine → registered version → canary →
promotion → the inference service answers with the new version; a bad candidate is rejected and
never served; a retrainer killed mid-training completes its trigger exactly once, and one killed
after each rollout step in turn ends in a consistent route."""

from __future__ import annotations

import json
import random
import signal
import sqlite3
import subprocess
import threading
import time
import uuid

import pytest

from driftloop.core.kafka import EventProducer
from driftloop.core.topics import ADAPTER_ROLLOUTS, RETRAIN_TRIGGERS
from driftloop.demo import world
from driftloop.retrainer.evaluate import exact_match
from driftloop.retrainer.registry import Registry
from driftloop.retrainer.triggers import version_for
from driftloop.v1 import events_pb2
from driftloop.v1 import inference_pb2 as pb
from tests.integration.helpers import consume_until, gate_figures
from tests.integration.inference.conftest import ADMIN_MD
from tests.integration.retrainer.conftest import SMALL, start_retrainer

pytestmark = pytest.mark.integration


def _changed_facts():
    old = world.old_world(SMALL.world_seed)
    new, facts = world.new_world(old)
    return [q for q in world.all_qa(new) if (q.route, q.kind) in facts]


def _ask(question: str, system: str | None) -> dict:
    """A rider's question as a raw prompt, or (``system`` given) as a chat: system prompt + user turn."""
    if system is None:
        return {"prompt": world.prompt(question)}
    return {"messages": [events_pb2.ChatMessage(role="system", content=system),
                         events_pb2.ChatMessage(role="user", content=question)]}


def _traffic_with_corrections(loop, alias: str, qas, shuffle_answers: bool = False, system: str | None = None) -> None:
    """Riders ask; the served model is wrong; they send the right answer as a correction."""
    answers = [q.answer for q in qas]
    if shuffle_answers:
        random.Random(1).shuffle(answers)
    for q, correct in zip(qas, answers, strict=True):
        r = loop.server.inference.Generate(pb.GenerateRequest(**_ask(q.question, system), adapter_alias=alias,
                                                              tags={"slice": q.kind}), timeout=60)
        if not exact_match(r.text, q.answer):
            loop.server.inference.SubmitFeedback(pb.SubmitFeedbackRequest(
                request_id=r.request_id, rating=events_pb2.RATING_NEGATIVE, correction=correct), timeout=10)


def test_the_demo_base_model_speaks_chat(loop) -> None:
    """The demo's base model carries a chat template (core/chat.QA_CHAT_TEMPLATE): a conversation of
    one user turn is the very prompt the model was trained on -- same tokens, same greedy answer."""
    greedy = pb.SamplingParams(max_tokens=16, temperature=0.0)
    for q in world.all_qa(world.old_world(SMALL.world_seed))[:5]:
        raw = loop.server.inference.Generate(pb.GenerateRequest(prompt=world.prompt(q.question), sampling=greedy),
                                             timeout=60)
        chat = loop.server.inference.Generate(pb.GenerateRequest(
            messages=[events_pb2.ChatMessage(role="user", content=q.question)], sampling=greedy), timeout=60)
        assert chat.usage.prompt_tokens == raw.usage.prompt_tokens
        assert chat.text == raw.text


def _trigger(alias: str) -> events_pb2.RetrainTrigger:
    t = events_pb2.RetrainTrigger(trigger_id=uuid.uuid4().hex, dedupe_key=f"test/{alias}/{uuid.uuid4().hex[:6]}",
                                  model="transit-small", adapter_alias=alias, adapter_version="v0",
                                  reason="test: sustained input drift")
    t.created_time.GetCurrentTime()
    t.window_start.FromSeconds(int(time.time()) - 3600)
    return t


def _wait_status(registry: Registry, alias: str, statuses: set[str], timeout: float, proc=None) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        vs = [v for v in registry.versions(alias) if v.version != "v0"]
        if vs and vs[-1].status in statuses:
            return vs[-1].version
        time.sleep(1)
    seen = [(v.version, v.status) for v in registry.versions(alias)]
    tail = "\n" + proc.log_tail(40) if proc is not None else ""
    raise AssertionError(f"{alias}: no version reached {statuses}: {seen}{tail}")


def _live_traffic(loop, alias: str, qas, stop: threading.Event, system: str | None = None) -> None:
    """Riders keep asking during the canary and rate each answer; the new version answers better."""
    rng = random.Random(3)
    while not stop.is_set():
        q = rng.choice(qas)
        r = loop.server.inference.Generate(pb.GenerateRequest(**_ask(q.question, system), adapter_alias=alias),
                                           timeout=60)
        good = exact_match(r.text, q.answer)
        loop.server.inference.SubmitFeedback(pb.SubmitFeedbackRequest(
            request_id=r.request_id, rating=events_pb2.RATING_POSITIVE if good else events_pb2.RATING_NEGATIVE),
            timeout=10)


def _outcomes(loop) -> dict[str, tuple]:
    db = sqlite3.connect(loop.state / "outcomes.sqlite")
    rows = db.execute("SELECT trigger_id, result, attempts, finished, version FROM outcomes").fetchall()
    db.close()
    return {r[0]: r[1:] for r in rows}


def _episode(loop, alias: str) -> list[tuple[str, str]]:
    """(result, detail) of each finished outcome of ``alias``, in the order the runs started."""
    db = sqlite3.connect(loop.state / "outcomes.sqlite")
    rows = db.execute("SELECT result, detail FROM outcomes WHERE alias = ? AND finished IS NOT NULL ORDER BY started",
                      (alias,)).fetchall()
    db.close()
    return rows


def _wait_outcome(loop, trigger_id: str, timeout: float) -> tuple:
    """(result, attempts, finished, version) once the trigger has a result; (None, ...) after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _outcomes(loop).get(trigger_id, (None,))[0] is None:
        time.sleep(1)
    return _outcomes(loop).get(trigger_id, (None, None, None, None))


def _listed(loop, alias: str) -> pb.ListAdaptersResponse:
    return loop.server.admin.ListAdapters(pb.ListAdaptersRequest(adapter_alias=alias), metadata=ADMIN_MD, timeout=10)


def _route(loop, alias: str) -> pb.AdapterRoute:
    return _listed(loop, alias).routes[0]


SYSTEM = "Transit help desk."  # the riders' app sends it before every question (chat)


def test_trigger_to_promotion_without_a_human(loop, kafka_broker, kafka_settings, unique, figure) -> None:
    """Riders talk to the service as a chat app does (a system prompt, then their question). The
    retrainer, set to PROMPT_FORMAT=chat with no SYSTEM_PROMPT of its own, keeps each correction's
    conversation as its request had it (the riders' system prompt, from the PredictionEvent), trains
    its LoRA on those rows rendered by the base model's chat template, and the gate measures it by
    sending the engine the same conversations; it is promoted and answers the riders' chats."""
    alias = "transit-qa"
    changed = [q for q in _changed_facts() if not q.held_out]
    _traffic_with_corrections(loop, alias, random.Random(2).sample(changed, 200), system=SYSTEM)
    retrainer = start_retrainer(loop, kafka_broker, unique("retrainer"), DRIFTLOOP_RETRAINER_PROMPT_FORMAT="chat")
    stop_traffic = threading.Event()
    try:
        producer = EventProducer(kafka_settings)
        trigger = _trigger(alias)
        t0 = time.monotonic()
        producer.send_and_wait(RETRAIN_TRIGGERS, trigger.dedupe_key, trigger)
        registry = Registry(loop.adapters)
        version = _wait_status(registry, alias, {"canary", "promoted", "rejected", "rolled_back"}, 600, retrainer)
        assert registry.get(alias, version).status != "rejected", registry.get(alias, version).metadata["gate_summary"]

        feeder = threading.Thread(target=_live_traffic, args=(loop, alias, changed, stop_traffic, SYSTEM),
                                  daemon=True)
        feeder.start()
        version = _wait_status(registry, alias, {"promoted", "rolled_back"}, 300, retrainer)
        elapsed = time.monotonic() - t0
        stop_traffic.set()
        feeder.join(30)
        v = registry.get(alias, version)
        assert v.status == "promoted", v.history
        print(f"trigger → promotion in {elapsed:.0f}s; {v.metadata['gate_summary']}")
        figure(f"retrainer promotion: trigger -> promotion {elapsed:.0f} s (needs < 300); "
               f"{gate_figures(v.metadata['gate']['checks'])}")
        assert [h["status"] for h in v.history] == ["candidate", "canary", "promoted"]
        assert v.metadata["gate"]["passed"] and v.metadata["parent"] == "v0"
        assert v.metadata["dataset"]["corrections"] > 0 and v.metadata["training"]["best_step"] > 0
        route = _route(loop, alias)
        assert route.stable_version == version and not route.canary_version
        hits = 0
        sample = random.Random(4).sample(changed, 40)
        for q in sample:
            r = loop.server.inference.Generate(pb.GenerateRequest(**_ask(q.question, SYSTEM), adapter_alias=alias),
                                               timeout=60)
            assert r.adapter_version == version
            hits += exact_match(r.text, q.answer)
        assert hits / len(sample) >= 0.5, hits
        assert v.metadata["prompt"] == {"kind": "chat", "template": "Q: {question}\nA:", "system_prompt": ""}
        rows = [json.loads(line) for line in (v.path / "dataset.jsonl").read_text().splitlines()]
        from_riders = [r for r in rows if "context" in r]  # corrections and confirmed answers: their own chat
        assert from_riders and all(r["context"] == [["system", SYSTEM]] for r in from_riders)
        assert len(from_riders) < len(rows)  # the curated rows have none: the alias's (empty) system prompt
        # The same trigger again is recognised and skipped.
        producer.send_and_wait(RETRAIN_TRIGGERS, trigger.dedupe_key, trigger)
        time.sleep(5)
        assert _outcomes(loop)[trigger.trigger_id][:2] == ("promoted", 1)
        assert len([x for x in registry.versions(alias) if x.version != "v0"]) == 1
        producer.close()
    finally:
        stop_traffic.set()
        retrainer.stop()


def test_bad_candidate_is_rejected_and_never_served(loop, kafka_broker, kafka_settings, unique, figure) -> None:
    alias = "transit-bad"
    changed = [q for q in _changed_facts() if not q.held_out]
    _traffic_with_corrections(loop, alias, random.Random(5).sample(changed, 200), shuffle_answers=True)
    retrainer = start_retrainer(loop, kafka_broker, unique("retrainer"), name="retrainer-bad")
    try:
        producer = EventProducer(kafka_settings)
        producer.send_and_wait(RETRAIN_TRIGGERS, alias, _trigger(alias))
        producer.close()
        registry = Registry(loop.adapters)
        version = _wait_status(registry, alias, {"rejected", "canary", "promoted"}, 600, retrainer)
        v = registry.get(alias, version)
        assert v.status == "rejected", v.metadata.get("gate_summary")
        print(v.metadata["gate_summary"])
        figure(f"retrainer bad candidate (must fail margin_over_serving): {gate_figures(v.metadata['gate']['checks'])}")
        # Shuffled corrections cannot be learnt: no gain where serving was wrong, and the report says so.
        checks = v.metadata["gate"]["checks"]
        assert not checks["margin_over_serving"]["ok"], v.metadata["gate_summary"]
        assert "did not learn the corrections" in v.metadata["gate_summary"]
        listed = _listed(loop, alias)
        assert listed.routes[0].stable_version == "v0" and not listed.routes[0].canary_version
        assert [x.version for x in listed.versions] == ["v0"]  # never loaded for traffic
        # The episode goes on: the retrainer published attempt 2 to the triggers topic and consumed it;
        # with no new corrections (RETRY_WAIT_S 5 here) it ends as skipped, and nothing more trains.
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and len(_episode(loop, alias)) < 2:
            time.sleep(1)
        steps = _episode(loop, alias)
        assert [r for r, _ in steps] == ["rejected", "skipped"], steps
        had = v.metadata["dataset"]["corrections"]
        assert "Next: attempt 2 of 3" in steps[0][1] and f"{had} corrections, {had + 20} wanted" in steps[1][1], steps
        assert [x.version for x in registry.versions(alias) if x.version != "v0"] == [version]  # nothing more trained
        figure(f"retrainer after a rejection: attempt 2 raised through Kafka, {steps[1][0]} without new "
               f"corrections ({steps[1][1].splitlines()[0][:80]})")
    finally:
        retrainer.stop()


def test_killed_mid_training_completes_exactly_once(loop, kafka_broker, kafka_settings, unique, figure) -> None:
    alias = "transit-crash"
    group = unique("retrainer")
    changed = [q for q in _changed_facts() if not q.held_out]
    _traffic_with_corrections(loop, alias, random.Random(6).sample(changed, 120))
    first = start_retrainer(loop, kafka_broker, group, name="retrainer-crash-1")
    trigger = _trigger(alias)
    producer = EventProducer(kafka_settings)
    producer.send_and_wait(RETRAIN_TRIGGERS, trigger.dedupe_key, trigger)
    producer.close()
    staging = loop.adapters / ".staging"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and not any(staging.glob("*/adapter_model.safetensors")):
        time.sleep(0.5)
    assert any(staging.glob("*/adapter_model.safetensors")), "training never started"
    first.kill()  # SIGKILL mid-training
    second = start_retrainer(loop, kafka_broker, group, name="retrainer-crash-2")
    try:
        registry = Registry(loop.adapters)
        _wait_status(registry, alias, {"promoted", "rejected", "rolled_back"}, 600, second)
        result, attempts, finished, version = _wait_outcome(loop, trigger.trigger_id, 60)
        assert attempts == 2 and finished and result in ("promoted", "rejected", "rolled_back")
        assert [v.version for v in registry.versions(alias) if v.version != "v0"] == [version]
        figure(f"retrainer killed mid-training: {result} after {attempts} attempts; "
               f"{gate_figures(registry.get(alias, version).metadata['gate']['checks'])}")
    finally:
        second.stop()


# Each rollout step of a run, at the three points a crash can fall: journaled but not published,
# published (and applied) but its status not recorded, and recorded (see retrainer/rollouts.py).
ROLLOUT_KILLS = ("rollout.canary.journaled", "rollout.canary.published", "rollout.canary.recorded",
                 "rollout.promote.journaled", "rollout.promote.published", "rollout.promote.recorded")


@pytest.mark.timeout(1200)  # one training, then seven retrainer starts (~40 s each: start-up, group rejoin)
def test_killed_after_each_rollout_step_ends_in_a_consistent_route(loop, kafka_broker, kafka_settings, unique,
                                                                   figure) -> None:
    """The real retrainer SIGKILLed at each rollout step in turn (a failpoint per process, see
    core/failpoints.py) and restarted each time: after every kill the route is one the run could
    have left (never stable = canary), the run trains once, and in the end exactly one canary and one
    promotion record exist, the version went candidate → canary → promoted once, and it serves."""
    alias = "transit-steps"
    changed = [q for q in _changed_facts() if not q.held_out]
    _traffic_with_corrections(loop, alias, random.Random(7).sample(changed, 200))
    group = unique("retrainer")
    trigger = _trigger(alias)
    producer = EventProducer(kafka_settings)
    producer.send_and_wait(RETRAIN_TRIGGERS, trigger.dedupe_key, trigger)
    producer.close()
    registry = Registry(loop.adapters)
    version = version_for(trigger.trigger_id)
    stop_traffic = threading.Event()
    feeder = threading.Thread(target=_live_traffic, args=(loop, alias, changed, stop_traffic), daemon=True)
    seen: list[tuple[str, str, str]] = []
    t0 = time.monotonic()
    try:
        for i, point in enumerate(ROLLOUT_KILLS):
            proc = start_retrainer(loop, kafka_broker, group, name=f"retrainer-kill-{i}", DRIFTLOOP_FAILPOINTS=point)
            try:
                code = proc.proc.wait(timeout=900 if i == 0 else 300)  # the first one trains
            except subprocess.TimeoutExpired:
                proc.kill()
                raise AssertionError(f"{point} never reached:\n{proc.log_tail(40)}") from None
            assert code == -signal.SIGKILL and f"failpoint {point}" in proc.log_path.read_text(), proc.log_tail(40)
            if i == 0:
                assert registry.get(alias, version).metadata["gate"]["passed"], \
                    registry.get(alias, version).metadata["gate_summary"]
                feeder.start()  # canary evidence from here on
            route = _route(loop, alias)
            seen.append((point, route.stable_version, route.canary_version))
            assert (route.stable_version, route.canary_version) in {("v0", ""), ("v0", version), (version, "")}, seen
        last = start_retrainer(loop, kafka_broker, group, name="retrainer-kill-last")
        try:
            result, attempts, finished, _ = _wait_outcome(loop, trigger.trigger_id, 120)
        finally:
            last.stop()
    finally:
        stop_traffic.set()
    assert (result, attempts) == ("promoted", len(ROLLOUT_KILLS) + 1) and finished
    v = registry.get(alias, version)
    assert [h["status"] for h in v.history] == ["candidate", "canary", "promoted"], v.history
    assert [x.version for x in registry.versions(alias) if x.version != "v0"] == [version]  # trained once
    records = consume_until(kafka_settings, [ADAPTER_ROLLOUTS], {ADAPTER_ROLLOUTS.name: events_pb2.AdapterRollout},
                            lambda got: len(got) >= 2, lambda r: r.adapter_alias == alias, timeout=30)
    assert [(r.action, r.stable.version, r.canary.version) for r in records] == [
        ("canary", "v0", version), ("promote", version, "")], records
    route = _route(loop, alias)
    assert (route.stable_version, route.canary_version) == (version, "")
    r = loop.server.inference.Generate(pb.GenerateRequest(prompt=world.prompt(changed[0].question),
                                                          adapter_alias=alias), timeout=60)
    assert r.adapter_version == version
    figure(f"retrainer killed after each of {len(ROLLOUT_KILLS)} rollout steps: {result} after {attempts} "
           f"processes in {time.monotonic() - t0:.0f} s; rollout records {[r.action for r in records]}; "
           f"routes after each kill {[(s, c or '-') for _, s, c in seen]}")


def test_cli_versions_rollback_promote_and_bench_base(loop, kafka_broker, unique) -> None:
    """The by-hand commands: list versions, roll back and promote through the rollout topic, and the
    base-model benchmark (runs after the promotion test, which registered a version)."""
    import subprocess
    import sys

    from tests.integration.retrainer.conftest import retrainer_env

    env = {**__import__("os").environ, **retrainer_env(loop, kafka_broker, unique("cli"))}
    cli = [sys.executable, "-m", "driftloop.retrainer"]
    listed = subprocess.run([*cli, "versions", "--alias", "transit-qa"], env=env, capture_output=True, text=True,
                            timeout=120)
    assert listed.returncode == 0, listed.stderr
    promoted = [line.split("\t")[0].split("/")[1] for line in listed.stdout.splitlines() if "\tpromoted\t" in line]
    assert len(promoted) == 1, listed.stdout
    version = promoted[0]

    # Both commands go through the rollout topic and wait until the replica applied them. (v0 predates
    # the registry, so the registered version is the only target here.)
    back = subprocess.run([*cli, "rollback", "transit-qa", version], env=env, capture_output=True, text=True,
                          timeout=180)
    assert back.returncode == 0, back.stderr
    assert _route(loop, "transit-qa").stable_version == version
    again = subprocess.run([*cli, "promote", "transit-qa", version], env=env, capture_output=True, text=True,
                           timeout=180)
    assert again.returncode == 0, again.stderr
    assert _route(loop, "transit-qa").stable_version == version
    missing = subprocess.run([*cli, "promote", "transit-qa", "no-such-version"], env=env, capture_output=True,
                             text=True, timeout=120)
    assert missing.returncode != 0
    # Approval commands (RELEASE_POLICY approve): nothing waits here; a promoted version cannot be
    # approved; a wrong admin token is refused by the inference admin API before anything changes.
    waiting = subprocess.run([*cli, "pending"], env=env, capture_output=True, text=True, timeout=60)
    assert waiting.returncode == 0 and "nothing awaits approval" in waiting.stdout, waiting.stderr
    late = subprocess.run([*cli, "approve", "transit-qa", version], env=env, capture_output=True, text=True,
                          timeout=120)
    assert late.returncode == 1 and "is promoted, not awaiting approval" in late.stderr, late.stderr
    forged = subprocess.run([*cli, "reject", "transit-qa", version],
                            env={**env, "DRIFTLOOP_RETRAINER_INFERENCE_ADMIN_TOKEN": "not-the-token"},
                            capture_output=True, text=True, timeout=120)
    assert forged.returncode == 2 and "refused" in forged.stderr, forged.stderr
    assert Registry(loop.adapters).get("transit-qa", version).status == "promoted"
    # The review queue, from the real topics: whatever it holds is well-formed and about the alias.
    queued = loop.state.parent / "review.jsonl"
    rq = subprocess.run([*cli, "review-queue", "--alias", "transit-qa", "--out", str(queued)], env=env,
                        capture_output=True, text=True, timeout=180)
    assert rq.returncode == 0 and "answers to review written" in rq.stdout, rq.stderr
    for item in map(__import__("json").loads, queued.read_text().splitlines()):
        assert item["reason"] in ("negative_no_correction", "low_confidence") and item["label"] == "", item
    bench = subprocess.run([*cli, "bench-base", str(loop.base), "--sample", "40"], env=env, capture_output=True,
                           text=True, timeout=300)
    assert bench.returncode == 0, bench.stderr
    assert "| base model |" in bench.stdout and str(loop.base) in bench.stdout
    print(bench.stdout)
