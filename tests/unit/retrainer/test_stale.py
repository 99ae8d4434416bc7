"""The staleness rule (retrainer/stale.py): a row a fresh correction contradicts is dropped and listed."""

from __future__ import annotations

import numpy as np
import pytest

from driftloop.retrainer.data import CleaningReport, Example
from driftloop.retrainer.stale import drop_stale

OLD = "Route 12 runs every 10 minutes."
NEW = "Route 12 runs every 15 minutes."


def table(vectors: dict[str, list[float]]):
    """A fake embedder: each text's unit vector from the table (similarity = dot product)."""
    def embed(texts: list[str]) -> np.ndarray:
        rows = np.array([vectors[t] for t in texts], dtype=np.float32)
        return rows / np.linalg.norm(rows, axis=1, keepdims=True)
    return embed


# cosine("How often does route 12 run?", "how often is route 12") = 0.96; with the unrelated question 0
EMBED = table({"How often does route 12 run?": [1.0, 0.0], "how often is route 12": [0.96, 0.28],
               "how frequent is route 12": [0.9, 0.44],
               "Where does route 12 end?": [0.0, 1.0], "How often does route 13 run?": [1.0, 0.0]})


def correction(question: str = "how often is route 12", answer: str = NEW, rejected: str = OLD) -> Example:
    return Example(question, answer, "feedback", "frequency", 10.0, rejected)


def test_equivalent_question_with_a_different_answer_is_stale() -> None:
    report = CleaningReport(rows_in=2)
    curated = Example("How often does route 12 run?", OLD, "curated", "frequency")
    kept, stale = drop_stale([correction(rejected=""), curated], EMBED, similarity=0.95, report=report)
    assert kept == [correction(rejected="")]
    assert [(s.question, s.answer, s.source, s.evidence, s.correction_answer) for s in stale] == [
        ("How often does route 12 run?", OLD, "curated", "contradicted", NEW)]
    assert stale[0].similarity == pytest.approx(0.96, abs=1e-3)
    assert report.removed["stale"] == 1 and report.rows_out == 1 and len(report.examples["stale"]) == 1


def test_equivalent_question_with_the_same_answer_is_kept() -> None:
    rows = [correction(), Example("How often does route 12 run?", "route 12 runs every 15 minutes.", "replay")]
    assert drop_stale(rows, EMBED, similarity=0.95) == (rows, [])  # case does not make another answer


def test_unrelated_question_is_kept() -> None:
    rows = [correction(), Example("Where does route 12 end?", "Route 12 ends at the Zoo.", "curated")]
    assert drop_stale(rows, EMBED, similarity=0.5) == (rows, [])


def test_a_different_number_is_a_different_question_however_close_the_embedding() -> None:
    rows = [Example("How often does route 12 run?", NEW, "feedback", rejected=OLD),
            Example("How often does route 13 run?", "Route 13 runs every 10 minutes.", "curated")]
    assert drop_stale(rows, EMBED, similarity=0.9) == (rows, [])  # cosine 1.0, but 12 != 13


def test_the_answer_riders_rejected_is_stale_at_the_looser_similarity() -> None:
    """Two differently phrased questions whose served answer was the row's, both corrected."""
    fixes = [correction(), correction("how frequent is route 12")]
    curated = Example("How often does route 12 run?", OLD, "curated")
    kept, stale = drop_stale([*fixes, curated], EMBED, similarity=0.99, rejected_similarity=0.6)
    assert kept == fixes and [s.evidence for s in stale] == ["rejected"]
    # below the looser threshold nothing is dropped
    assert drop_stale([*fixes, curated], EMBED, similarity=0.99, rejected_similarity=0.97)[1] == []


def test_one_rejection_is_a_confusion_not_a_stale_fact() -> None:
    """The model answered one phrasing with another fact (route 12's first departure when asked how
    late it runs): one rejected phrasing is not enough to call that fact stale."""
    kept, stale = drop_stale([correction(), Example("How often does route 12 run?", OLD, "curated")], EMBED,
                             similarity=0.99, rejected_similarity=0.6)
    assert stale == [] and len(kept) == 2
    assert len(drop_stale([correction(), Example("How often does route 12 run?", OLD, "curated")], EMBED,
                          similarity=0.99, rejected_similarity=0.6, rejected_support=1)[1]) == 1


def test_an_answer_riders_confirmed_is_not_stale_by_a_rejection() -> None:
    """The model gave a true answer to the wrong question (route 12's fare when asked how often it
    runs): a rider confirming that answer since the episode began says it is current. Neither the
    confirmed row nor a curated row with that answer is dropped."""
    fare = "A single fare on route 12 is 2.50 euros."
    fixes = [correction("how often is route 12", NEW, rejected=fare), correction("how frequent is route 12", NEW,
                                                                                rejected=fare)]
    rows = [*fixes, Example("How often does route 12 run?", fare, "curated"),
            Example("How often does route 12 run?", fare, "confirmed")]
    assert drop_stale(rows, EMBED, similarity=0.99, rejected_similarity=0.6) == (rows, [])
    assert [s.source for s in drop_stale(rows[:3], EMBED, similarity=0.99, rejected_similarity=0.6)[1]] == ["curated"]


def test_a_correction_that_agrees_with_the_row_keeps_it() -> None:
    rows = [correction(), correction("How often does route 12 run?", OLD, NEW),
            Example("How often does route 12 run?", OLD, "curated")]
    kept, stale = drop_stale(rows, EMBED, similarity=0.95)
    assert kept == rows and stale == []  # corrections disagree among themselves: clean's conflict rule decides


def test_corrections_are_never_dropped_and_nothing_is_embedded_without_both_kinds() -> None:
    def refuse(texts):
        raise AssertionError("embedded")
    rows = [correction(), correction("How often does route 12 run?", "Route 12 runs every 20 minutes.")]
    assert drop_stale(rows, refuse) == (rows, [])
    assert drop_stale([Example("How often does route 12 run?", OLD, "curated")], refuse)[1] == []


def test_minilm_tells_paraphrases_from_other_facts_of_the_same_route() -> None:
    """The real model, on the demo's phrasings: a paraphrase of the corrected fact is stale (by the
    rejected answer); the same route's first departure (cosine up to 0.97 with 'last') is kept."""
    from driftloop.core.embedding import Embedder

    embedder = Embedder()
    last_old, last_new = "The last route 12 leaves at 23:10.", "The last route 12 leaves at 21:40."
    rows = [Example("when is the last route 12 at night", last_new, "feedback", rejected=last_old),
            Example("last route 12 is when", last_new, "feedback", rejected=last_old),
            Example("What time is the last departure of route 12?", last_old, "curated"),
            Example("What time is the first departure of route 12?", "The first route 12 leaves at 05:40.", "curated"),
            Example("What time is the last departure of route 21?", "The last route 21 leaves at 23:10.", "curated")]
    kept, stale = drop_stale(rows, embedder.embed)
    assert [s.question for s in stale] == ["What time is the last departure of route 12?"], stale
    assert [r.question for r in kept][2:] == ["What time is the first departure of route 12?",
                                              "What time is the last departure of route 21?"]


def test_questions_their_answers_tell_apart_are_not_stale() -> None:
    """'first' vs 'last' departure of one route (MiniLM 0.95-0.96): each answer repeats its own
    question's word, so the rows answer different questions (the big-change demo dropped five good
    first-departure rows before)."""
    from driftloop.core.embedding import Embedder

    rows = [Example("What time is the last departure of route 24?", "The last route 24 leaves at 21:00.",
                    "feedback", rejected="The last route 24 leaves at 23:10."),
            Example("When does the last route 24 depart?", "The last route 24 leaves at 21:00.",
                    "feedback", rejected="The last route 24 leaves at 23:10."),
            Example("What time is the first departure of route 24?", "The first route 24 leaves at 06:30.", "curated"),
            Example("When does the first route 24 depart?", "The first route 24 leaves at 06:30.", "confirmed"),
            Example("last route 24 is when", "The last route 24 leaves at 23:10.", "curated")]  # 0.90-0.92
    kept, stale = drop_stale(rows, Embedder().embed, similarity=0.9)
    assert [s.question for s in stale] == ["last route 24 is when"], stale
    assert [r.question for r in kept][2:] == ["What time is the first departure of route 24?",
                                              "When does the first route 24 depart?"]


@pytest.mark.parametrize(("q1", "a1", "q2", "a2", "apart"), [
    ("When does the first route 4 depart?", "The first route 4 leaves at 06:30.",
     "When does the last route 4 depart?", "The last route 4 leaves at 21:00.", True),
    # paraphrases: the extra words are not repeated by one answer alone
    ("What is the destination of route 3?", "Route 3 ends at the Zoo.", "where does route 3 end",
     "Route 3 ends at the Airport.", False),
    ("is route 5 going the normal way", "No, route 5 runs its normal route.", "Is route 5 on a detour?",
     "Yes, route 5 is detoured via Mill Lane.", False),  # only one side repeats its word: still comparable
    ("When is the first bus on route 5?", "The first route 5 leaves at 06:00.", "first route 5 is when",
     "The first route 5 leaves at 06:20.", False),
])
def test_told_apart(q1: str, a1: str, q2: str, a2: str, apart: bool) -> None:
    from driftloop.retrainer.stale import told_apart

    assert told_apart(q1, a1, q2, a2) is apart and told_apart(q2, a2, q1, a1) is apart
