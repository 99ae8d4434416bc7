"""Task metrics, perturbations and the acceptance gate.

Metrics: exact match (after whitespace/case folding), token F1, ROUGE-L (F-measure over the
longest common subsequence of tokens). Robustness: the same questions lower-cased, with typos,
and paraphrased. Slices: per question kind; the gap between the best and worst slice is bounded.
The held-out test rows are scored as a whole and in two parts: the *fresh* rows (held-out
corrections: what the candidate must have learnt) and the *regression* rows (everything else:
curated, confirmed and replayed behaviour that must not change). The gate compares the candidate
with the version serving now, with criteria fixed before training: its gain over serving is measured
on the fresh rows (so the replay that protects old behaviour cannot dilute it), its forgetting on
the regression rows.
"""

from __future__ import annotations

import random
import re
import statistics
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace

from driftloop.core.slices import guess_language, slice_key
from driftloop.retrainer.data import Example

TOKEN = re.compile(r"[a-z0-9.:]+")
PARAPHRASES = [("How often", "How frequently"), ("how often", "how frequently"), ("Where does", "Where will"),
               ("What time", "At what time"), ("When does", "At what time does"), ("Is ", "Could you tell me if "),
               ("how much", "what's the price"), ("What is", "Tell me")]

Answerer = Callable[[Sequence[Example]], tuple[list[str], list[float]]]
"""rows → (answers to their questions, each in its row's conversation; per-request latencies in seconds)."""


def _tokens(text: str) -> list[str]:
    return TOKEN.findall(text.lower().rstrip("."))


def exact_match(pred: str, gold: str) -> float:
    return float(" ".join(_tokens(pred)) == " ".join(_tokens(gold)))


def token_f1(pred: str, gold: str) -> float:
    p, g = _tokens(pred), _tokens(gold)
    if not p or not g:
        return float(p == g)
    common = sum(min(p.count(t), g.count(t)) for t in set(p))
    if common == 0:
        return 0.0
    precision, recall = common / len(p), common / len(g)
    return 2 * precision * recall / (precision + recall)


def rouge_l(pred: str, gold: str) -> float:
    p, g = _tokens(pred), _tokens(gold)
    if not p or not g:
        return float(p == g)
    dp = [0] * (len(g) + 1)
    for a in p:
        prev = 0
        for j, b in enumerate(g, 1):
            cur = dp[j]
            dp[j] = prev + 1 if a == b else max(dp[j], dp[j - 1])
            prev = cur
    lcs = dp[-1]
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(p), lcs / len(g)
    return 2 * precision * recall / (precision + recall)


def perturb(question: str, kind: str, rng: random.Random) -> str:
    if kind == "case":
        return question.lower() if rng.random() < 0.5 else question.upper()
    if kind == "typo":
        chars = list(question)
        letters = [i for i, c in enumerate(chars) if c.isalpha()]
        for i in rng.sample(letters, min(2, len(letters))):
            j = min(i + 1, len(chars) - 1)
            chars[i], chars[j] = chars[j], chars[i]
        return "".join(chars)
    if kind == "paraphrase":
        for a, b in PARAPHRASES:
            if a in question:
                return question.replace(a, b, 1)
        return question.rstrip("?") + ", please?"
    raise ValueError(kind)


@dataclass(frozen=True)
class SliceGap:
    """The widest gap between two slices of one key (``slice``, ``lang``) with enough rows."""

    gap: float
    worst: str = "-"
    worst_em: float = 0.0
    best: str = "-"
    best_em: float = 0.0


@dataclass
class Scores:
    n: int
    exact_match: float
    token_f1: float
    rouge_l: float
    by_slice: dict[str, float] = field(default_factory=dict)  # label (core/slices.py) -> exact match
    missed: list[tuple[str, str]] = field(default_factory=list)  # (question, slice) answered wrongly
    slice_rows: dict[str, int] = field(default_factory=dict)  # label -> rows

    def slice_gap(self, min_rows: int = 1) -> SliceGap:
        """Best minus worst exact match among the slices of each key that have ``min_rows`` rows (a
        slice of three questions says nothing), the widest over the keys."""
        widest = SliceGap(0.0)
        by_key: dict[str, list[str]] = {}
        for label in self.by_slice:
            if self.slice_rows.get(label, min_rows) >= min_rows:
                by_key.setdefault(slice_key(label), []).append(label)
        for labels in by_key.values():
            worst, best = min(labels, key=self.by_slice.get), max(labels, key=self.by_slice.get)
            gap = self.by_slice[best] - self.by_slice[worst]
            if len(labels) > 1 and gap > widest.gap:
                widest = SliceGap(gap, worst, self.by_slice[worst], best, self.by_slice[best])
        return widest


def row_slices(r: Example) -> list[str]:
    """The slices a row is scored in: its ``slice`` (a curated row's field, or the request's ``slice``
    tag) and the guessed language of its question — the monitor's labels (core/slices.py)."""
    return [f"slice={r.slice or 'all'}", f"lang={guess_language(r.question)}"]


def score(rows: Sequence[Example], answers: Sequence[str]) -> Scores:
    em = [exact_match(a, r.answer) for a, r in zip(answers, rows, strict=True)]
    slices: dict[str, list[float]] = {}
    for r, e in zip(rows, em, strict=True):
        for label in row_slices(r):
            slices.setdefault(label, []).append(e)
    return Scores(
        n=len(rows), exact_match=statistics.fmean(em) if em else 0.0,
        token_f1=statistics.fmean(token_f1(a, r.answer) for a, r in zip(answers, rows, strict=True)) if rows else 0.0,
        rouge_l=statistics.fmean(rouge_l(a, r.answer) for a, r in zip(answers, rows, strict=True)) if rows else 0.0,
        by_slice={k: statistics.fmean(v) for k, v in sorted(slices.items())},
        missed=[(r.question, r.slice or "all") for r, e in zip(rows, em, strict=True) if not e],
        slice_rows={k: len(v) for k, v in sorted(slices.items())},
    )


@dataclass(frozen=True)
class GateCriteria:
    """Fixed in settings before training; stored with the run."""

    min_exact_match: float = 0.6
    min_margin_over_serving: float = 0.05
    max_regression_drop: float = 0.02
    min_robustness_ratio: float = 0.7
    max_slice_gap: float = 0.6
    max_latency_p95_s: float = 2.0
    min_slice_rows: int = 10  # a slice with fewer held-out rows is reported, not judged


FRESH_SOURCE = "feedback"  # rows from corrections; every other source is behaviour to keep


@dataclass
class Evaluation:
    test: Scores
    regression: Scores  # held-out rows that are not corrections: behaviour that must not change
    robustness: dict[str, Scores]
    latency_p50_s: float
    latency_p95_s: float
    fresh: Scores = field(default_factory=lambda: Scores(0, 0.0, 0.0, 0.0))  # held-out corrections


def evaluate(answer: Answerer, test: Sequence[Example], seed: int = 0) -> Evaluation:
    """Answers every held-out question once (plus its perturbations) and scores the whole set, its
    fresh part and its regression part from those answers."""
    rng = random.Random(seed)
    got, latencies = answer(test)
    robustness = {}
    for kind in ("case", "typo", "paraphrase"):  # the question perturbed, its conversation as it was
        perturbed = [replace(r, question=perturb(r.question, kind, rng)) for r in test]
        robustness[kind] = score(test, answer(perturbed)[0])
    fresh = [(r, a) for r, a in zip(test, got, strict=True) if r.source == FRESH_SOURCE]
    kept = [(r, a) for r, a in zip(test, got, strict=True) if r.source != FRESH_SOURCE]
    lat = sorted(latencies) or [0.0]
    return Evaluation(score(test, got), score([r for r, _ in kept], [a for _, a in kept]), robustness,
                      lat[len(lat) // 2], lat[min(len(lat) - 1, int(0.95 * len(lat)))],
                      score([r for r, _ in fresh], [a for _, a in fresh]))


@dataclass
class GateReport:
    passed: bool
    criteria: GateCriteria
    candidate: Evaluation
    serving: Evaluation | None
    checks: dict[str, dict] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def failed(self) -> list[str]:
        return [name for name, c in self.checks.items() if not c["ok"]]

    def summary(self) -> str:
        lines = [f"Gate {'PASSED' if self.passed else 'REJECTED'}"
                 + (f" on {', '.join(self.failed)}" if self.failed else "")]
        for name, c in self.checks.items():
            lines.append(f"- [{'x' if c['ok'] else ' '}] {name}: {c['value']:.3f} (needs {c['rule']})")
        lines += [f"  why: {c['why']}" for c in self.checks.values() if not c["ok"] and c.get("why")]
        cand = self.candidate
        t = cand.test
        lines.append(f"candidate: EM {t.exact_match:.3f}, F1 {t.token_f1:.3f}, ROUGE-L {t.rouge_l:.3f} on {t.n} "
                     f"held-out rows; corrections EM {cand.fresh.exact_match:.3f} ({cand.fresh.n} rows), "
                     f"regression EM {cand.regression.exact_match:.3f} ({cand.regression.n} rows)")
        if self.serving is not None:
            s = self.serving.test
            lines.append(f"serving:   EM {s.exact_match:.3f}, F1 {s.token_f1:.3f}, ROUGE-L {s.rouge_l:.3f}; "
                         f"corrections EM {self.serving.fresh.exact_match:.3f}, "
                         f"regression EM {self.serving.regression.exact_match:.3f}")
        return "\n".join(lines)


def _slice_counts(items: Sequence[tuple[str, str]]) -> str:
    counts: dict[str, int] = {}
    for _, sl in items:
        counts[sl] = counts.get(sl, 0) + 1
    return ", ".join(f"{k} {v}" for k, v in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def forgotten(candidate: Evaluation, serving: Evaluation) -> list[tuple[str, str]]:
    """Regression questions the serving version answers right and the candidate wrongly."""
    serving_missed = set(serving.regression.missed)
    return [m for m in candidate.regression.missed if m not in serving_missed]


def gate(candidate: Evaluation, serving: Evaluation | None, c: GateCriteria) -> GateReport:
    checks: dict[str, dict] = {}

    def check(name: str, value: float, ok: bool, rule: str, why: str = "") -> None:
        checks[name] = {"value": value, "ok": bool(ok), "rule": rule, "why": why}

    em = candidate.test.exact_match
    check("exact_match", em, em >= c.min_exact_match, f">= {c.min_exact_match}",
          f"the candidate answers {em:.0%} of {candidate.test.n} held-out questions exactly "
          f"(slices: {', '.join(f'{k} {v:.2f}' for k, v in candidate.test.by_slice.items())})")
    if serving is not None:
        # The gain is measured where the serving version was wrong: on held-out corrections. Without
        # any (a trigger from error rate or drift alone), on the whole held-out set.
        part = "fresh" if candidate.fresh.n else "test"
        cand_part, serv_part = getattr(candidate, part), getattr(serving, part)
        margin = cand_part.exact_match - serv_part.exact_match
        where = f"{cand_part.n} held-out corrections" if part == "fresh" else f"{cand_part.n} held-out rows"
        check("margin_over_serving", margin, margin >= c.min_margin_over_serving,
              f">= {c.min_margin_over_serving} on {where}",
              f"the candidate did not learn the corrections well enough: EM {cand_part.exact_match:.3f} vs "
              f"serving {serv_part.exact_match:.3f} on {where}; more or more consistent corrections, or more "
              "training steps, are needed")
        drop = serving.regression.exact_match - candidate.regression.exact_match
        lost = forgotten(candidate, serving)
        examples = "; ".join(repr(q[:80]) for q, _ in lost[:3])
        check("regression_drop", drop, drop <= c.max_regression_drop, f"<= {c.max_regression_drop}",
              f"forgetting: the candidate gets {len(lost)} of {candidate.regression.n} unchanged answers wrong "
              f"that the serving version gets right (by slice: {_slice_counts(lost) or '-'}; e.g. {examples}); "
              "train with more replay of unchanged behaviour (REPLAY_RATIO, curated rows for those slices) "
              "or fewer steps")
    worst_kind, worst = min(((k, s.exact_match) for k, s in candidate.robustness.items()), key=lambda kv: kv[1])
    ratio = worst / em if em else 0.0
    check("robustness_ratio", ratio, ratio >= c.min_robustness_ratio, f">= {c.min_robustness_ratio}",
          f"perturbed questions ({worst_kind}) are answered with EM {worst:.3f} against {em:.3f} clean")
    g = candidate.test.slice_gap(c.min_slice_rows)
    check("slice_gap", g.gap, g.gap <= c.max_slice_gap, f"<= {c.max_slice_gap}",
          f"slice {g.worst} is answered worst ({g.worst_em:.3f}) against {g.best} ({g.best_em:.3f}); slices with "
          f">= {c.min_slice_rows} held-out rows: "
          + ", ".join(f"{k} {v:.2f}" for k, v in candidate.test.by_slice.items()
                      if candidate.test.slice_rows.get(k, 0) >= c.min_slice_rows))
    check("latency_p95_s", candidate.latency_p95_s, candidate.latency_p95_s <= c.max_latency_p95_s,
          f"<= {c.max_latency_p95_s}", f"p95 generation latency {candidate.latency_p95_s:.2f} s through the engine")
    return GateReport(all(x["ok"] for x in checks.values()), c, candidate, serving, checks)
