"""The staleness rule: a kept row that a fresh correction contradicts is dropped before training.

A *fresh correction* is a rider's answer to a question the served model got wrong. A curated,
replayed or confirmed row about the same question with another answer is stale: trained beside the
correction, the adapter learns a mixture, and in the held-out split it would reward the old answer.
The cleaning rules already settle conflicts between identical questions (``data.clean``); this rule
finds the paraphrases, by question similarity (MiniLM embeddings, ``core/embedding.py``):

* **contradicted** — the row's question is at least ``similarity`` close to a correction's and its
  answer differs from the correction's (and no correction that close agrees with the row);
* **rejected** — the row's answer *is* the answer riders rejected (the served completion a correction
  replaced) for a question at least ``rejected_similarity`` close: the row teaches exactly what users
  said is wrong, so a looser match is enough. Unless riders *confirmed* that answer since the episode
  began (a confirmed row with it): then it is a current fact, and the rejection was the model giving
  it to the wrong question — the demo's base model answers "What is the destination of route 3?"
  with route 3's fare, and a first version of this rule dropped 148 good rows (91 curated, 67
  confirmed) for it. Confirmed rows are never stale by this evidence. And at least
  ``rejected_support`` different correction questions must have rejected it: a stale fact is
  answered on every phrasing of its question, a confusion on one (the small test model answered
  "till when does route 55 run" with route 55's first departure, and that one rejection dropped
  the curated rows about the first departure).

Both also need the two questions to mention the same numbers: MiniLM barely sees them ("route 12"
and "route 13" embed almost alike), and a number is usually what tells two facts apart. And they
must not be *told apart by their answers*: when each question has a word the other lacks, and each
answer repeats its own question's word but not the other's ("What time is the **first** departure of
route 24?" → "The **first** route 24 leaves at 06:30." against "… the **last** departure …" → "The
**last** …"), the two rows answer different questions, however close their embeddings (0.95-0.96 for
those; the big-change demo dropped five good first-departure rows as stale before this check). A
paraphrase's extra words ("What is the destination of" / "Where does … end") are not repeated by
one answer alone, so it stays comparable. Measured on
the demo's transit questions (all-MiniLM-L6-v2): paraphrases of one fact score 0.43-0.98, questions
about another fact of the same route up to 0.97 ("first" vs "last" departure), so a similarity
alone cannot be both safe and complete; the rejected-answer evidence is what makes the rule complete
at a safe ``similarity`` (see README, data preparation). Corrections are never dropped here.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from driftloop.retrainer.data import CleaningReport, Example

Embed = Callable[[list[str]], np.ndarray]
"""texts → one unit-length row per text (cosine similarity is the dot product)."""

NUMBER = re.compile(r"\d+(?:[.:,]\d+)*")
WORD = re.compile(r"[^\W\d_]+")


@dataclass(frozen=True)
class StaleRow:
    """A dropped row and the correction that made it stale: what the data owner needs to fix the source."""

    question: str
    answer: str
    source: str  # curated, replay, confirmed
    evidence: str  # contradicted, rejected
    correction_question: str
    correction_answer: str
    similarity: float

    def to_dict(self) -> dict:
        return {**asdict(self), "similarity": round(self.similarity, 4)}


def numbers(text: str) -> tuple[str, ...]:
    return tuple(sorted(NUMBER.findall(text)))


def words(text: str) -> frozenset[str]:
    return frozenset(w.casefold() for w in WORD.findall(text))


def told_apart(q1: str, a1: str, q2: str, a2: str) -> bool:
    """Whether two question/answer pairs ask different things, by their answers: each question has a
    word the other lacks that its own answer repeats and the other answer does not."""
    return _apart((words(q1), words(a1)), (words(q2), words(a2)))


def _apart(one: tuple[frozenset[str], frozenset[str]], other: tuple[frozenset[str], frozenset[str]]) -> bool:
    (w1, x1), (w2, x2) = one, other  # (question words, answer words) of each row
    return bool(((w1 - w2) & (x1 - x2)) and ((w2 - w1) & (x2 - x1)))


def _same(a: str, b: str) -> bool:
    return a.casefold() == b.casefold()


def drop_stale(rows: Sequence[Example], embed: Embed, similarity: float = 0.95, rejected_similarity: float = 0.8,
               report: CleaningReport | None = None, rejected_support: int = 2) -> tuple[list[Example], list[StaleRow]]:
    """``rows`` without the stale ones (order kept), and the stale rows with their evidence. Each stale
    row is also counted under the rule ``stale`` in ``report``."""
    fresh = [ex for ex in rows if ex.source == "feedback"]
    others = [i for i, ex in enumerate(rows) if ex.source != "feedback"]
    if report is not None:
        report.removed.setdefault("stale", 0)
    if not fresh or not others:
        return list(rows), []
    texts = sorted({ex.question for ex in fresh} | {rows[i].question for i in others})
    vectors = embed(texts)
    at = {t: vectors[k] for k, t in enumerate(texts)}
    sims = np.stack([at[rows[i].question] for i in others]) @ np.stack([at[ex.question] for ex in fresh]).T
    fresh_numbers = [numbers(ex.question) for ex in fresh]
    fresh_words = [(words(ex.question), words(ex.answer)) for ex in fresh]  # once, not per pair
    floor = min(similarity, rejected_similarity)  # no evidence below both thresholds
    confirmed = {ex.answer.casefold() for ex in rows if ex.source == "confirmed"}
    stale: dict[int, StaleRow] = {}
    for row, i in enumerate(others):
        ex = rows[i]
        own, own_words = numbers(ex.question), (words(ex.question), words(ex.answer))
        candidates = [j for j in np.argsort(-sims[row]) if sims[row, j] >= floor and fresh_numbers[j] == own
                      and not _apart(own_words, fresh_words[j])]
        close = [j for j in candidates if sims[row, j] >= similarity]
        if any(_same(fresh[j].answer, ex.answer) for j in close):
            continue  # a correction says the same: the row is current
        hit = next((j for j in close if not _same(fresh[j].answer, ex.answer)), None)
        evidence = "contradicted"
        if hit is None and ex.source != "confirmed" and ex.answer.casefold() not in confirmed:
            evidence = "rejected"
            support = [j for j in candidates if sims[row, j] >= rejected_similarity and fresh[j].rejected
                       and _same(fresh[j].rejected, ex.answer) and not _same(fresh[j].answer, ex.answer)]
            if len({fresh[j].question.casefold() for j in support}) >= rejected_support:
                hit = support[0]
        if hit is not None:
            c = fresh[hit]
            stale[i] = StaleRow(ex.question, ex.answer, ex.source, evidence, c.question, c.answer,
                                float(sims[row, hit]))
    kept = [ex for i, ex in enumerate(rows) if i not in stale]
    if report is not None:
        for i in sorted(stale):
            report.drop("stale", rows[i])
        report.rows_out = len(kept)
    return kept, [stale[i] for i in sorted(stale)]
