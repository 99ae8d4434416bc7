"""Training data: rows, the cleaning rules that run before anything trains, and the split.

Every rule reports how many rows it removed (``CleaningReport``). Rules, in order:
normalise (Unicode NFKC, whitespace), empty, oversize, garbled, format, PII, exact duplicate,
near duplicate, conflicting answers for the same question; then, in ``stale.py``, rows a fresh
correction contradicts (paraphrases included). The split is by a stable hash of the
normalised question, so a question and its near-duplicates land in the same split and the test set
never leaks into training.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections import Counter, defaultdict
from dataclasses import dataclass, field, replace

from driftloop.core.chat import CHAT_ROLES, MAX_MESSAGES

PII = {
    "email": re.compile(r"[\w.+-]+@[\w-]+\.[\w.-]+"),
    "phone": re.compile(r"(?<!\d)(?:\+?\d[\d ()-]{8,}\d)(?!\d)"),
    "card": re.compile(r"(?<!\d)(?:\d[ -]?){13,16}(?!\d)"),
    "iban": re.compile(r"\b[A-Z]{2}\d{2}[A-Z0-9]{11,30}\b"),
}
WORD = re.compile(r"[a-z0-9]+")


@dataclass(frozen=True)
class Example:
    question: str
    answer: str
    source: str = "feedback"  # feedback (a user correction), confirmed (a thumbs-up answer), curated, replay
    slice: str = ""
    time: float = 0.0
    rejected: str = ""  # a correction's: the served answer the rider replaced (see stale.py)
    # The conversation before the question, as the request sent it: (role, content) turns -- the app's
    # system prompt, earlier turns. None where there was none to keep (a raw prompt, curated rows):
    # the alias's SYSTEM_PROMPT stands for it (prompts.PromptFormat).
    context: tuple[tuple[str, str], ...] | None = None

    def context_text(self) -> str:
        return "\n".join(content for _, content in self.context or ())


@dataclass
class CleaningReport:
    rows_in: int = 0
    removed: dict[str, int] = field(default_factory=dict)
    # Up to three removed rows per rule, as sha256 prefixes of question and answer: enough to find a
    # row in the source data, never its text (a removed row may be exactly the PII it was removed for).
    examples: dict[str, list[str]] = field(default_factory=dict)
    rows_out: int = 0

    def drop(self, rule: str, ex: Example) -> None:
        self.removed[rule] = self.removed.get(rule, 0) + 1
        shown = self.examples.setdefault(rule, [])
        if len(shown) < 3:
            shown.append(row_hash(ex))

    def summary(self) -> str:
        parts = ", ".join(f"{k}: {v}" for k, v in self.removed.items() if v)
        return f"{self.rows_in} rows in, {self.rows_out} out ({parts or 'nothing removed'})"


def row_hash(ex: Example) -> str:
    return hashlib.sha256(f"{ex.question}\x1f{ex.answer}".encode()).hexdigest()[:16]


def normalise(text: str) -> str:
    text = unicodedata.normalize("NFKC", text)
    text = "".join(ch for ch in text if ch in "\n\t" or unicodedata.category(ch)[0] != "C")
    return re.sub(r"\s+", " ", text).strip()


def question_key(question: str) -> str:
    """Case, punctuation and spacing do not make a different question."""
    return " ".join(WORD.findall(question.lower()))


def _shingles(text: str) -> set[str]:
    words = WORD.findall(text.lower())
    return {" ".join(words[i: i + 2]) for i in range(max(1, len(words) - 1))}


def garbled(text: str) -> bool:
    if "\ufffd" in text:
        return True
    letters = sum(ch.isalnum() for ch in text)
    return len(text) >= 4 and letters / len(text) < 0.5


def clean(rows: list[Example], max_chars: int = 300, near_dup_threshold: float = 0.8
          ) -> tuple[list[Example], CleaningReport]:
    report = CleaningReport(rows_in=len(rows))
    for rule in ("empty", "oversize", "garbled", "format", "pii", "exact_duplicate", "near_duplicate", "conflict"):
        report.removed[rule] = 0
    kept: list[Example] = []
    for ex in rows:
        ex = replace(ex, question=normalise(ex.question), answer=normalise(ex.answer),
                     rejected=normalise(ex.rejected))
        if not ex.question or not ex.answer:
            report.drop("empty", ex)
        elif len(ex.question) > max_chars or len(ex.answer) > max_chars:
            report.drop("oversize", ex)
        elif garbled(ex.question) or garbled(ex.answer) or "\ufffd" in ex.context_text():
            report.drop("garbled", ex)
        elif (not re.search(r"[A-Za-z]", ex.question) or ex.answer[-1] not in ".!?" or "\n" in ex.answer
              or (ex.context is not None and (len(ex.context) > MAX_MESSAGES
                                              or any(r not in CHAT_ROLES for r, _ in ex.context)))):
            report.drop("format", ex)
        elif any(p.search(ex.question) or p.search(ex.answer) or p.search(ex.context_text()) for p in PII.values()):
            report.drop("pii", ex)
        else:
            kept.append(ex)
    # Exact duplicates: same question and answer once normalised.
    seen: set[tuple[str, str]] = set()
    unique: list[Example] = []
    for ex in kept:
        key = (question_key(ex.question), ex.answer.lower())
        if key in seen:
            report.drop("exact_duplicate", ex)
        else:
            seen.add(key)
            unique.append(ex)
    # Near duplicates: same answer and questions whose word-bigram Jaccard ≥ threshold.
    by_answer: dict[str, list[tuple[set[str], Example]]] = defaultdict(list)
    deduped: list[Example] = []
    for ex in unique:
        sh = _shingles(ex.question)
        if any(len(sh & other) / max(1, len(sh | other)) >= near_dup_threshold
               for other, _ in by_answer[ex.answer.lower()]):
            report.drop("near_duplicate", ex)
            continue
        by_answer[ex.answer.lower()].append((sh, ex))
        deduped.append(ex)
    # Conflicts: one question, several answers. Keep the answer most rows agree on (ties: the
    # newest); a correction beats a confirmed answer, which beats curated or replayed data.
    groups: dict[str, list[Example]] = defaultdict(list)
    for ex in deduped:
        groups[question_key(ex.question)].append(ex)
    out: list[Example] = []
    for group in groups.values():
        answers = {ex.answer for ex in group}
        if len(answers) == 1:
            out.extend(group)
            continue
        votes = (Counter(ex.answer for ex in group if ex.source == "feedback")
                 or Counter(ex.answer for ex in group if ex.source == "confirmed")
                 or Counter(ex.answer for ex in group))
        newest = {ex.answer: ex.time for ex in sorted(group, key=lambda e: e.time)}
        winner = max(votes, key=lambda a: (votes[a], newest.get(a, 0.0)))
        for ex in group:
            (out.append(ex) if ex.answer == winner else report.drop("conflict", ex))
    report.rows_out = len(out)
    return out, report


def split_of(question: str, test_share: float = 0.15, val_share: float = 0.1) -> str:
    h = int.from_bytes(hashlib.sha256(question_key(question).encode()).digest()[:8], "big") / 2**64
    return "test" if h < test_share else "val" if h < test_share + val_share else "train"


def split(rows: list[Example], test_share: float = 0.15, val_share: float = 0.1) -> dict[str, list[Example]]:
    out: dict[str, list[Example]] = {"train": [], "val": [], "test": []}
    for ex in rows:
        out[split_of(ex.question, test_share, val_share)].append(ex)
    return out


def data_hash(rows: list[Example]) -> str:
    h = hashlib.sha256()
    for ex in sorted(rows, key=lambda e: (e.question, e.answer, e.context or ())):
        h.update(f"{ex.question}\x1f{ex.answer}\x1f{ex.source}\n".encode())
        if ex.context is not None:  # rows without a context hash as they always did
            h.update(("\x1e".join(f"{r}\x1f{c}" for r, c in ex.context) + "\x1d").encode())
    return h.hexdigest()
