"""Training-row augmentation (retrainer/augment.py)."""

from __future__ import annotations

import random

from driftloop.retrainer.augment import FAMILIES, augment, variant
from driftloop.retrainer.data import Example
from driftloop.retrainer.evaluate import perturb

ROWS = [Example("How often does route 12 run?", "Route 12 runs every 10 minutes.", "feedback", "frequency"),
        Example("Where does route 7 end?", "Route 7 ends at the Zoo.", "curated", "terminal")]


def test_each_row_gets_its_variants_with_the_same_answer_and_source() -> None:
    out = augment(ROWS, 2, seed=1)
    assert out[:2] == ROWS and len(out) == 6
    for ex in out[2:]:
        original = next(r for r in ROWS if r.answer == ex.answer)
        assert (ex.source, ex.slice) == (original.source, original.slice) and ex.question != original.question
    assert augment(ROWS, 2, seed=1) == out  # seeded
    assert augment(ROWS, 0) == ROWS


def test_each_family_changes_the_question_as_riders_do() -> None:
    rng = random.Random(0)
    q = "How often does route 12 run?"
    assert variant(q, "case", rng) in {q.lower(), q.upper(), q.title()}
    typo = variant(q, "typo", rng)
    assert typo != q and abs(len(typo) - len(q)) <= 2 and "12" in typo
    framed = variant(q, "frame", rng)
    assert "how often does route 12 run" in framed.lower() and framed != q
    assert set(FAMILIES) == {"case", "typo", "frame"}


def test_the_gate_perturbations_are_not_the_ones_trained_on() -> None:
    """The gate swaps letters and uses its own paraphrase list (and perturbs held-out rows only);
    augmentation deletes, doubles or replaces letters and frames the question: over many draws no
    typo or frame variant equals a gate typo or paraphrase of the same question."""
    q = "When does the first route 12 depart?"
    gate = {perturb(q, kind, random.Random(s)) for s in range(200) for kind in ("typo", "paraphrase")}
    ours = {variant(q, family, random.Random(s)) for s in range(200) for family in ("typo", "frame")}
    assert not gate & ours
