"""Planted dirty rows are all removed and reported; the split is stable and never leaks."""

from __future__ import annotations

import pytest

from driftloop.retrainer.data import Example, clean, split, split_of


def test_planted_dirty_rows_are_removed_and_reported() -> None:
    good = [Example(f"How often does route {i} run?", f"Route {i} runs every 10 minutes.", time=i)
            for i in range(20)]
    dirty = [
        Example("How often does route 1 run?", "Route 1 runs every 10 minutes."),  # exact duplicate
        Example("  how often does ROUTE 2 run ?? ", "Route 2 runs every 10 minutes."),  # duplicate once normalised
        Example("How often does route 3 run, please?", "Route 3 runs every 10 minutes."),  # near duplicate
        Example("", "Route 4 runs every 10 minutes."),  # empty question
        Example("Where does route 5 end?", "   "),  # empty answer
        Example("Where does route 6 end? " + "x" * 400, "Route 6 ends at Riverside."),  # oversize
        Example("Wh\ufffd\ufffd does r\ufffdute 7 end?", "Route 7 ends at Riverside."),  # garbled
        Example("@@@ ### $$$ %%% ^^^", "Route 8 ends at Riverside."),  # garbled
        Example("Where does route 9 end?", "Route 9 ends at Riverside"),  # format: no final punctuation
        Example("Call me at +44 20 7946 0958 about route 10?", "Route 10 ends at Riverside."),  # PII phone
        Example("Where does route 11 end? mail jo@example.com", "Route 11 ends at Riverside."),  # PII email
        Example("Where does route 12 end?", "Route 12 ends at 4111 1111 1111 1111."),  # PII card
        Example("Where does route 13 end?", "Route 13 ends at Riverside.", time=1),  # conflict (older, loses)
        Example("Where does route 13 end?", "Route 13 ends at the Airport.", time=2),
        Example("where does route 13 end", "Route 13 ends at the Airport.", time=3),  # exact dup once normalised
    ]
    rows, report = clean(good + dirty)
    assert report.removed == {"empty": 2, "oversize": 1, "garbled": 2, "format": 1, "pii": 3, "exact_duplicate": 3,
                              "near_duplicate": 1, "conflict": 1}
    assert report.rows_in == len(good) + len(dirty) and report.rows_out == len(rows) == 21
    assert {r.answer for r in rows if "where does route 13" in r.question.lower()} == {"Route 13 ends at the Airport."}
    assert "rows in" in report.summary() and report.examples["pii"]
    # counts and hashes only: the removed rows' text is never stored
    assert all(len(h) == 16 and int(h, 16) >= 0 for hashes in report.examples.values() for h in hashes)


def test_normalisation() -> None:
    rows, _ = clean([Example("Ｗhere\u00a0does  route 1\tend?", "Route 1 ends at Riverside.")])
    assert rows[0].question == "Where does route 1 end?"


def test_split_is_stable_and_by_question() -> None:
    rows = [Example(f"Where does route {i} end?", f"Route {i} ends at X.") for i in range(400)]
    parts = split(rows)
    assert {k: len(v) for k, v in parts.items()} == {k: len(v) for k, v in split(rows).items()}
    assert 30 < len(parts["test"]) < 90 and 20 < len(parts["val"]) < 70
    # Variants of one question (case, punctuation) always share a split.
    assert split_of("Where does route 3 end?") == split_of("where does ROUTE 3 end")
    test_q = {r.question for r in parts["test"]}
    assert not test_q & {r.question for r in parts["train"]}


def test_conflicts_prefer_corrections_then_confirmed_answers() -> None:
    q = "How often does route 12 run?"
    rows = [Example(q, "Route 12 runs every 10 minutes.", "curated", "frequency", 1.0),
            Example(q, "Route 12 runs every 15 minutes.", "confirmed", "frequency", 2.0),
            Example("how often is route 12", "Route 12 runs every 10 minutes.", "curated", "frequency", 1.0),
            Example("how often is route 12", "Route 12 runs every 20 minutes.", "confirmed", "frequency", 2.0),
            Example("how often is route 12", "Route 12 runs every 15 minutes.", "feedback", "frequency", 3.0)]
    kept, report = clean(rows)
    assert {(r.question, r.answer) for r in kept} == {(q, "Route 12 runs every 15 minutes."),
                                                      ("how often is route 12", "Route 12 runs every 15 minutes.")}
    assert report.removed["conflict"] == 3


def test_every_batch_rehearses_unchanged_behaviour_in_a_fixed_share() -> None:
    import random

    from driftloop.retrainer.train import mixed_batch

    rng = random.Random(0)
    fresh, keep = [("f", i) for i in range(200)], [("k", i) for i in range(1200)]
    for _ in range(20):
        batch = mixed_batch(rng, fresh, keep, 32, 1 / 7)
        assert len(batch) == 32 and sum(kind == "f" for kind, _ in batch) == 5 and len(set(batch)) == 32
    # Few rows of one kind: they are repeated, the share holds.
    batch = mixed_batch(rng, fresh[:2], keep, 32, 0.5)
    assert sum(kind == "f" for kind, _ in batch) == 16
    # Share 0 or one kind missing: uniform over what there is.
    assert len(mixed_batch(rng, fresh, keep, 32, 0.0)) == 32
    assert mixed_batch(rng, [], keep[:10], 32, 0.5) and len(mixed_batch(rng, [], keep[:10], 32, 0.5)) == 10


def test_replay_ratio_sets_the_fresh_share_of_a_batch() -> None:
    from driftloop.retrainer.settings import RetrainerSettings

    assert RetrainerSettings().train_config().fresh_share == 1 / 7
    assert RetrainerSettings(replay_ratio=3).train_config().fresh_share == 0.25
    assert RetrainerSettings(replay_ratio=0).train_config().fresh_share == 0.0


@pytest.mark.parametrize(("n_fresh", "n_keep", "least", "most", "share"), [
    (100, 1200, 1 / 7, 0.5, 1 / 7),  # a few corrections: at least 1/(1+REPLAY_RATIO) of each batch
    (397, 619, 1 / 7, 0.5, 397 / 1016),  # a big change: the corrections' share of the rows
    (656, 634, 1 / 7, 0.5, 0.5),  # more corrections than rows to keep: capped, every step still rehearses
    (656, 634, 0.0, 0.5, 0.0),  # REPLAY_RATIO 0: uniform batches
    (0, 634, 1 / 7, 0.5, 1 / 7), (656, 0, 1 / 7, 0.5, 1 / 7),  # one kind missing: mixed_batch goes uniform
])
def test_the_fresh_share_of_a_batch_follows_the_data_between_bounds(n_fresh: int, n_keep: int, least: float,
                                                                   most: float, share: float) -> None:
    from driftloop.retrainer.train import batch_share

    assert batch_share(n_fresh, n_keep, least, most) == pytest.approx(share)
    from driftloop.retrainer.settings import RetrainerSettings

    assert RetrainerSettings(fresh_share_max=0.3).train_config().fresh_share_max == 0.3
