from __future__ import annotations

import random
from pathlib import Path

import pytest

from driftloop.retrainer.data import Example
from driftloop.retrainer.evaluate import (
    Evaluation,
    GateCriteria,
    Scores,
    evaluate,
    exact_match,
    gate,
    perturb,
    rouge_l,
    score,
    token_f1,
)
from driftloop.retrainer.registry import Registry


def test_metrics() -> None:
    assert exact_match("Route 4 runs every 10 minutes.", "route 4 runs every 10 minutes") == 1.0
    assert exact_match("Route 4 runs every 12 minutes.", "Route 4 runs every 10 minutes.") == 0.0
    assert token_f1("Route 4 runs every 12 minutes.", "Route 4 runs every 10 minutes.") == pytest.approx(5 / 6)
    assert rouge_l("a b c d", "a c d") == pytest.approx(2 * 1 * 0.75 / 1.75)
    assert rouge_l("", "x") == 0.0 and token_f1("", "") == 1.0


def test_perturbations_change_the_question() -> None:
    rng = random.Random(0)
    q = "How often does route 4 run?"
    assert perturb(q, "case", rng).lower() == q.lower()
    assert perturb(q, "typo", rng) != q and sorted(perturb(q, "typo", rng)) == sorted(q)
    assert perturb(q, "paraphrase", rng) == "How frequently does route 4 run?"


def test_slices_and_gap() -> None:
    """A row is scored in its slice and its question's language (the monitor's labels); the gap is
    taken within each key, among slices with enough rows."""
    rows = [Example("what is the fare", "a.", slice="fare"), Example("what is the fare now", "b.", slice="fare"),
            Example("¿cuál es el desvío?", "c.", slice="detour")]
    s = score(rows, ["a.", "x.", "c."])
    assert s.by_slice == {"lang=en": 0.5, "lang=es": 1.0, "slice=detour": 1.0, "slice=fare": 0.5}
    assert s.slice_rows == {"lang=en": 2, "lang=es": 1, "slice=detour": 1, "slice=fare": 2}
    assert s.slice_gap().gap == 0.5 and s.slice_gap().worst in ("lang=en", "slice=fare")
    assert s.slice_gap(min_rows=2).gap == 0.0  # one slice of each key has 2 rows: nothing to compare


def test_the_slice_check_names_the_worst_slice() -> None:
    rows = [Example(f"what is fare {i}", "a.", slice="fare") for i in range(10)]
    rows += [Example(f"cuál es el desvío {i}", "b.", slice="fare") for i in range(10)]
    cand = score(rows, ["a."] * 10 + ["x."] * 10)
    ev = Evaluation(cand, cand, {"case": cand}, 0.05, 0.1, Scores(30, 1.0, 0, 0))
    report = gate(ev, None, GateCriteria(min_exact_match=0.0, min_margin_over_serving=0.0, max_slice_gap=0.6,
                                         min_robustness_ratio=0.0))
    assert report.failed == ["slice_gap"] and "slice lang=es is answered worst (0.000) against lang=en" in \
        report.summary()


def _eval(em: float, reg: float, robust: float = 1.0, p95: float = 0.1, fresh: float | None = None,
          missed: tuple = ()) -> Evaluation:
    s = Scores(100, em, em, em, {"a": em, "b": em})
    return Evaluation(s, Scores(50, reg, reg, reg, missed=list(missed)), {"case": Scores(100, em * robust, 0, 0)},
                      0.05, p95, Scores(30, em if fresh is None else fresh, 0, 0))


def test_gate_decisions() -> None:
    c = GateCriteria(min_exact_match=0.6, min_margin_over_serving=0.05, max_regression_drop=0.02)
    assert gate(_eval(0.9, 0.95), _eval(0.2, 0.95), c).passed
    assert not gate(_eval(0.9, 0.90), _eval(0.2, 0.95), c).passed  # regression dropped 5 points
    assert not gate(_eval(0.5, 0.95), _eval(0.2, 0.95), c).passed  # below the floor
    assert not gate(_eval(0.9, 0.95), _eval(0.88, 0.95), c).passed  # not better than serving by the margin
    assert not gate(_eval(0.9, 0.95, robust=0.5), _eval(0.2, 0.95), c).passed
    assert not gate(_eval(0.9, 0.95, p95=5.0), _eval(0.2, 0.95), c).passed
    report = gate(_eval(0.9, 0.95), _eval(0.2, 0.95), c)
    assert "PASSED" in report.summary() and report.to_dict()["checks"]["margin_over_serving"]["ok"]


def test_margin_is_measured_on_held_out_corrections() -> None:
    """Replay of unchanged behaviour fills the test set with rows serving already gets right; the gain
    is measured where serving was wrong, so that replay cannot hide (or fake) it."""
    c = GateCriteria(min_exact_match=0.6, min_margin_over_serving=0.1, max_regression_drop=0.02)
    # Whole test set barely better (0.93 vs 0.90), corrections learnt (0.8 vs 0.0): passes.
    report = gate(_eval(0.93, 0.95, fresh=0.8), _eval(0.90, 0.95, fresh=0.0), c)
    assert report.passed and report.checks["margin_over_serving"]["value"] == pytest.approx(0.8)
    assert "30 held-out corrections" in report.checks["margin_over_serving"]["rule"]
    # Whole test set much better, corrections not learnt: rejected, and the summary says so.
    report = gate(_eval(0.95, 0.95, fresh=0.1), _eval(0.5, 0.95, fresh=0.05), c)
    assert not report.passed and report.failed == ["margin_over_serving"]
    assert "did not learn the corrections" in report.summary()
    # No corrections held out (a trigger from drift alone): the whole test set.
    no_fresh = _eval(0.9, 0.95)
    no_fresh.fresh = Scores(0, 0.0, 0.0, 0.0)
    assert gate(no_fresh, _eval(0.5, 0.95), c).checks["margin_over_serving"]["rule"].endswith("held-out rows")


def test_a_regression_is_named_forgetting_with_the_slices_it_hit() -> None:
    c = GateCriteria(min_exact_match=0.6, min_margin_over_serving=0.05, max_regression_drop=0.02)
    lost = [("Is route 7 on a detour?", "detour"), ("any detour on route 10", "detour"), ("fare for route 3?", "fare")]
    serving = _eval(0.2, 0.98, fresh=0.0, missed=[("hard one", "fare")])
    report = gate(_eval(0.9, 0.90, fresh=0.9, missed=[*lost, ("hard one", "fare")]), serving, c)
    assert not report.passed and report.failed == ["regression_drop"]
    text = report.summary()
    assert text.startswith("Gate REJECTED on regression_drop")
    assert "forgetting: the candidate gets 3 of 50 unchanged answers wrong" in text
    assert "by slice: detour 2, fare 1" in text and "REPLAY_RATIO" in text


def test_evaluate_with_an_answerer() -> None:
    rows = [Example(f"How often does route {i} run?", f"Route {i} runs every 10 minutes.", slice="frequency")
            for i in range(10)]
    truth = {r.question.lower(): r.answer for r in rows}

    def answer(rows):
        return [truth.get(r.question.lower(), "I don't know.") for r in rows], [0.01] * len(rows)

    rows = [r if i % 3 else Example(r.question, "Route 0 runs every 99 minutes.", "curated", r.slice)
            for i, r in enumerate(rows)]
    ev = evaluate(answer, rows)
    assert ev.robustness["case"].exact_match == ev.test.exact_match == 0.6  # rows 0, 3, 6, 9 disagree
    assert ev.robustness["typo"].exact_match == 0.0 and ev.latency_p95_s == 0.01
    assert (ev.fresh.n, ev.fresh.exact_match) == (6, 1.0)  # corrections (source feedback) held out
    assert (ev.regression.n, ev.regression.exact_match) == (4, 0.0)  # the rest: behaviour to keep
    assert [q for q, _ in ev.regression.missed] == [rows[i].question for i in (0, 3, 6, 9)]


def test_evaluate_asks_each_question_in_its_own_conversation() -> None:
    """Rows keep the conversation their request had: the gate asks in it, perturbed questions too."""
    system = (("system", "You are the Harbour Lines help desk."),)
    rows = [Example("How often does route 1 run?", "Route 1 runs every 10 minutes.", context=system),
            Example("How often does route 2 run?", "Route 2 runs every 12 minutes.")]
    asked = []

    def answer(batch):
        asked.extend(batch)
        return [r.answer for r in rows], [0.01] * len(batch)
    evaluate(answer, rows)
    assert len(asked) == 8 and [r.context for r in asked] == [system, None] * 4
    assert {r.question for r in asked[2:]} != {r.question for r in rows}  # perturbed, context kept


def test_registry_immutable_versions_and_status(tmp_path: Path) -> None:
    reg = Registry(tmp_path / "adapters")
    staged = tmp_path / "stage"
    staged.mkdir()
    (staged / "adapter_config.json").write_text("{}")
    v = reg.register("transit-qa", "v1", staged, {"parent": "", "data_hash": "abc"})
    assert v.status == "candidate" and v.metadata["data_hash"] == "abc" and not staged.exists()
    again = tmp_path / "stage2"
    again.mkdir()
    with pytest.raises(FileExistsError):
        reg.register("transit-qa", "v1", again, {})
    reg.set_status("transit-qa", "v1", "canary", "gate passed")
    reg.set_status("transit-qa", "v1", "promoted", "canary healthy")
    assert reg.serving("transit-qa").version == "v1"
    assert [h["status"] for h in reg.get("transit-qa", "v1").history] == ["candidate", "canary", "promoted"]
    with pytest.raises(ValueError):
        reg.set_status("transit-qa", "v1", "shipped")
