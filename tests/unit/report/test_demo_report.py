"""The demo report renders from a timeline: plots, markdown with the accuracy table, HTML.
(Runs in the monitor environment, where matplotlib lives.)"""

from __future__ import annotations

import json
from pathlib import Path

from driftloop.demo import report


def _timeline() -> dict:
    samples = []
    for t in range(0, 100, 2):
        drift = 0.002 if t < 40 else 0.03
        for name, value in (("driftloop_monitor_drift_statistic", drift),
                            ("driftloop_monitor_drift_statistic_threshold", 0.01)):
            samples.append({"t": t, "service": "monitor", "name": name, "value": value,
                            "labels": {"model": "m", "adapter_alias": "transit-qa", "detector": "input_embedding"}})
        samples.append({"t": t, "service": "monitor", "name": "driftloop_monitor_rate", "value": 0.1 if t < 40 else 0.5,
                        "labels": {"model": "m", "adapter_alias": "transit-qa", "detector": "negative_feedback_rate"}})
    answers = [[t / 10, "before" if t < 400 else "after", "v0" if t < 800 else "r-1", int(t < 400 or t >= 800)]
               for t in range(1000)]
    events = [{"t": 40, "event": "world change", "detail": "37 facts changed"},
              {"t": 55, "event": "trigger (from the topic)", "detail": "sustained input drift"},
              {"t": 70, "event": "retrainer: dataset done", "detail": ""},
              {"t": 75, "event": "version r-1: canary", "detail": "weight 0.3"},
              {"t": 80, "event": "version r-1: promoted", "detail": "canary healthy | ok"}]
    ev = {"version": "v0", "n": 300, "accuracy": 0.05,
          "by_slice": {"lang=en": {"n": 290, "accuracy": 0.05}, "slice=fare": {"n": 40, "accuracy": 0.0}}}
    summary = {"result": "targets met", "wall_seconds": 100,
               "eval_before_loop": {"changed": ev, "unchanged": {**ev, "accuracy": 0.9}},
               "eval_after_loop": {"changed": {**ev, "version": "r-1", "accuracy": 0.9,
                                               "by_slice": {"lang=en": {"n": 290, "accuracy": 0.9}}},
                                   "unchanged": {**ev, "version": "r-1", "accuracy": 0.91}},
               "trigger": {"created_s_after_change": 15, "reason": "sustained input drift", "predictions": 200,
                           "feedback": 120, "negative_feedback": 60,
                           "signals": [{"signal": "input_embedding", "statistic": 0.03, "threshold": 0.01,
                                        "p_value": 0.0}]},
               "rounds": [{"round": 1, "version": "r-0", "eval": {"changed": {"accuracy": 0.7},
                                                                   "unchanged": {"accuracy": 0.9}}},
                          {"round": 2, "version": "r-1", "eval": {"changed": {"accuracy": 0.9},
                                                                   "unchanged": {"accuracy": 0.91}}}],
               "episode_end": "recovered",
               "traffic_before": {"requests": 400, "accuracy": 0.9, "feedback": 240, "negative": 20,
                                  "corrections": 14}}
    return {"summary": summary, "events": events, "samples": samples, "answers": answers}


def test_report_renders(tmp_path: Path) -> None:
    (tmp_path / "timeline.json").write_text(json.dumps(_timeline()))
    report.render(tmp_path)
    for name in ("loop.png", "accuracy.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = (tmp_path / "report.md").read_text()
    assert "**Result: targets met**" in md and "| changed (300 questions) | 5.0% | 90.0% | +85.0 pts |" in md
    assert "input_embedding: statistic 0.03 vs threshold 0.01" in md
    assert "| lang=en | 5.0% (290) | 90.0% (290) | 5.0% (290) | 5.0% (290) |" in md  # by slice, before and after
    assert "| slice=fare | 0.0% (40) | – | 0.0% (40) | 0.0% (40) |" in md
    assert "| 2 | r-1 | 90.0% | 91.0% |" in md and "Episode: recovered" in md  # rounds
    page = (tmp_path / "report.html").read_text()
    assert '<img alt="the loop over time" src="loop.png"' in page and "<table>" in page
    assert "canary healthy / ok" in page


def test_report_renders_as_the_demo_runs_it_with_both_transports(tmp_path: Path) -> None:
    """The demo runs the module as a script (every helper must exist before its entry point runs)."""
    import subprocess
    import sys

    data = _timeline()
    data["summary"]["traffic_before"].update(by_transport={"grpc": 280, "http": 120},
                                             correct_by_transport={"grpc": 252, "http": 108})
    data["summary"]["riders"] = {"format": "chat", "system_prompt": "You are the help desk.", "http_share": 0.3}
    data["summary"]["base_model"] = {"parameters": 1_900_000, "train_seconds": 60, "seconds_this_run": 1, "quality": {
        k: {"exact_match": v} for k, v in (("trained_phrasings", 1.0), ("held_out_phrasings", 0.5),
                                           ("trained_phrasings_app_system", 0.99),
                                           ("held_out_phrasings_app_system", 0.49))}}
    (tmp_path / "timeline.json").write_text(json.dumps(data))
    subprocess.run([sys.executable, "-m", "driftloop.demo.report", str(tmp_path)], check=True, timeout=120)
    md = (tmp_path / "report.md").read_text()
    assert "| before | 400 | 90.0% | 240 | 20 | 14 | 280, 90.0% | 120, 90.0% |" in md
    assert ('Riders ask as a chat (system prompt "You are the help desk.", then the question as the user turn); '
            "30.0% of them through the OpenAI-compatible endpoint") in md
    assert "Behind the demo app's system prompt (one it was never trained with): 99.0% and 49.0%." in md
