"""The whole loop with no human step, on real parts: riders over gRPC → the real vLLM engine → Kafka →
the monitor (its own environment) detects the world change and raises a trigger → the retrainer
trains, gates through the engine, canaries and promotes → riders are answered by the new version;
the report is written. This is `make demo` at a smaller scale (2-layer base model, less traffic)."""

from __future__ import annotations

import json
import os

import pytest

from driftloop.demo import world
from driftloop.demo.run import Demo
from driftloop.demo.settings import DemoSettings
from tests.integration.helpers import gate_figures
from tests.integration.retrainer.conftest import SMALL

pytestmark = pytest.mark.integration


@pytest.mark.timeout(1500)  # ~9 min alone on 2 cores; the loop's own bound is after_max_s
@pytest.mark.parametrize("scenario", ["schedules", "faq-change"])
def test_world_change_is_detected_retrained_and_promoted(tmp_path_factory, small_base_model, scenario: str,
                                                        figure) -> None:
    """Both scenarios: 'schedules' (new timetables, detours, new routes) and 'faq-change' (terminals and
    first departures change: the curated FAQ's rows about them go stale and must be dropped)."""
    tmp_path = tmp_path_factory.mktemp(scenario)
    base = small_base_model  # built once per session: Demo.setup finds it up to date
    settings = DemoSettings(run_dir=tmp_path / "run", report_dir=tmp_path / "report",
                            base_model_dir=base, before_requests=400, eval_size=80,
                            settle_requests=100, after_max_s=600, curated_rows=200, rate=10, scenario=scenario)
    demo = Demo(settings, SMALL, overrides={"retrainer": {
        "max_steps": 450, "min_corrections": 150, "canary_min_requests": 30,
        # Augmentation costs this 2-layer model what it must learn in the schedules scenario (3 new routes):
        # changed facts 0.0 -> 0.237 with AUGMENT_VARIANTS 2 against 0.537 without (450 steps each, one run
        # each, 2026-12-06; robustness 0.639 against 0.431); faq-change reached 0.863 with it. The 4-layer
        # demo model shows no such cost (88.7 % with, 89.3 % without). So: off here for schedules only.
        "augment_variants": 0 if scenario == "schedules" else 2,
        # Training threads: 1 like the demo. With 2 (DRIFTLOOP_TEST_TRAIN_THREADS) on 2 cores, next to the
        # engine's spinning thread, training is ~9x slower and the loop misses after_max_s (README).
        "train_threads": int(os.environ.get("DRIFTLOOP_TEST_TRAIN_THREADS", "1")),
        # The 2-layer model is weaker than the demo's: a lower EM floor. Regression drop: `make demo`'s
        # 0.05 (measured 0.000 in every run since the replay mix: 6 runs, 1 training thread).
        "gate_min_exact_match": 0.4, "gate_max_regression_drop": 0.05,
        "gate_min_robustness_ratio": 0.0, "gate_max_slice_gap": 1.0}})
    try:
        demo.setup()
        summary = demo.run()
    finally:
        demo.shutdown()
        for p in demo.procs:
            print(f"--- {p.name} ---\n{p.log_tail(15)}")
    out = demo.write()
    events = [e["event"] for e in demo.timeline.events]
    assert "monitor raised a RetrainTrigger" in events, events
    trigger = summary["trigger"]
    assert trigger["created_s_after_change"] < 300 and trigger["signals"], trigger
    version = summary.get("version")
    assert version is not None, summary.get("result")
    assert [h["status"] for h in version["history"]] == ["candidate", "canary", "promoted"]
    assert version["dataset"]["corrections"] >= 150 and version["dataset"]["confirmed"] > 0
    before, after = summary["eval_before_loop"], summary["eval_after_loop"]
    print(f"DEMO-LOOP trigger {trigger['created_s_after_change']:.0f}s after the change; changed "
          f"{before['changed']['accuracy']:.3f} -> {after['changed']['accuracy']:.3f}, unchanged "
          f"{before['unchanged']['accuracy']:.3f} -> {after['unchanged']['accuracy']:.3f}; corrections "
          f"{version['dataset']['corrections']}, confirmed {version['dataset']['confirmed']}\n"
          f"{version.get('gate_summary', '')}")
    if scenario == "faq-change":  # the curated rows teaching a changed fact's old answer are (nearly) all dropped
        old = world.old_world(SMALL.world_seed)
        outdated = {world.answer(old[n], kind) for n, kind in world.faq_change(old)[1]}
        curated = [json.loads(line) for line in (settings.run_dir / "curated.jsonl").read_text().splitlines()]
        trained = [json.loads(line) for line in
                   (demo.adapters / settings.alias / version["name"] / "dataset.jsonl").read_text().splitlines()]
        stale_in = [r for r in curated if r["answer"] in outdated]
        left = [r["question"] for r in trained if r["answer"] in outdated]
        # measured: 2 of 61 left in `make demo SCENARIO=faq-change`; at this scale (fewer corrections per fact,
        # so less evidence) 0 of 30 with the first rule and 5 of 30 with its support guard (2026-12-06)
        assert stale_in and len(left) <= 0.25 * len(stale_in), (left, version["dataset"]["summary"])
    threads = os.environ.get("DRIFTLOOP_TEST_TRAIN_THREADS", "1")
    figure(f"demo loop {scenario} (small, train threads {threads}): trigger "
           f"{trigger['created_s_after_change']:.0f} s after the change (needs < 300); changed "
           f"{before['changed']['accuracy']:.3f} -> {after['changed']['accuracy']:.3f} (needs a gain >= 0.3); "
           f"unchanged {before['unchanged']['accuracy']:.3f} -> {after['unchanged']['accuracy']:.3f}; "
           f"gate: {gate_figures(version['gate_checks'])}; cleaning: {version['dataset']['summary']}")
    assert before["changed"]["accuracy"] < 0.3
    assert after["changed"]["accuracy"] >= before["changed"]["accuracy"] + 0.3, (before, after)
    assert summary["traffic_settled"]["by_version"] == {version["name"]: 100}
    data = json.loads((out / "timeline.json").read_text())
    assert data["answers"] and any(s["name"] == "driftloop_monitor_drift_statistic" for s in data["samples"])
    assert (out / "loop.png").stat().st_size > 10_000 and (out / "accuracy.png").exists()
    assert "## Accuracy" in (out / "report.md").read_text() and (out / "report.html").exists()
