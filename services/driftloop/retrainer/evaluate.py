"""Task metrics, perturbations and the acceptance gate.

Metrics: exact match (after whitespace/case folding), token F1, ROUGE-L (F-measure over the
longest common subsequence of tokens). Robustness: the same questions lower-cased, with typos,
and paraphrased. Slices: per question kind; the gap between the best and worst slice is bounded.
The gate compares the candidate with the version serving now, with criteria fixed before training.
"""

from __future__ import annotations

import random
import re
import statistics
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

from driftloop.retrainer.data import Example

TOKEN = re.compile(r"[a-z0-9.:]+")
PARAPHRASES = [("How often", "How frequently"), ("how often", "how frequently"), ("Where does", "Where will"),
               ("What time", "At what time"), ("When does", "At what time does"), ("Is ", "Could you tell me if "),
               ("how much", "what's the price"), ("What is", "Tell me")]

Answerer = Callable[[Sequence[str]], tuple[list[str], list[float]]]
"""questions → (answers, per-request latencies in seconds)."""


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


@dataclass
class Scores:
    n: int
    exact_match: float
    token_f1: float
    rouge_l: float
    by_slice: dict[str, float] = field(default_factory=dict)

    @property
    def slice_gap(self) -> float:
        return max(self.by_slice.values()) - min(self.by_slice.values()) if len(self.by_slice) > 1 else 0.0


def score(rows: Sequence[Example], answers: Sequence[str]) -> Scores:
    em = [exact_match(a, r.answer) for a, r in zip(answers, rows, strict=True)]
    slices: dict[str, list[float]] = {}
    for r, e in zip(rows, em, strict=True):
        slices.setdefault(r.slice or "all", []).append(e)
    return Scores(
        n=len(rows), exact_match=statistics.fmean(em) if em else 0.0,
        token_f1=statistics.fmean(token_f1(a, r.answer) for a, r in zip(answers, rows, strict=True)) if rows else 0.0,
        rouge_l=statistics.fmean(rouge_l(a, r.answer) for a, r in zip(answers, rows, strict=True)) if rows else 0.0,
        by_slice={k: statistics.fmean(v) for k, v in sorted(slices.items())},
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


@dataclass
class Evaluation:
    test: Scores
    regression: Scores
    robustness: dict[str, Scores]
    latency_p50_s: float
    latency_p95_s: float


def evaluate(answer: Answerer, test: Sequence[Example], regression: Sequence[Example], seed: int = 0) -> Evaluation:
    rng = random.Random(seed)
    questions = [r.question for r in test]
    got, latencies = answer(questions)
    reg_got, reg_lat = answer([r.question for r in regression]) if regression else ([], [])
    robustness = {}
    for kind in ("case", "typo", "paraphrase"):
        perturbed = [perturb(q, kind, rng) for q in questions]
        robustness[kind] = score(test, answer(perturbed)[0])
    lat = sorted(latencies + reg_lat) or [0.0]
    return Evaluation(score(test, got), score(regression, reg_got), robustness,
                      lat[len(lat) // 2], lat[min(len(lat) - 1, int(0.95 * len(lat)))])


@dataclass
class GateReport:
    passed: bool
    criteria: GateCriteria
    candidate: Evaluation
    serving: Evaluation | None
    checks: dict[str, dict] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        lines = [f"Gate {'PASSED' if self.passed else 'REJECTED'}"]
        for name, c in self.checks.items():
            lines.append(f"- [{'x' if c['ok'] else ' '}] {name}: {c['value']:.3f} (needs {c['rule']})")
        t = self.candidate.test
        lines.append(f"candidate: EM {t.exact_match:.3f}, F1 {t.token_f1:.3f}, ROUGE-L {t.rouge_l:.3f} on {t.n} "
                     f"held-out rows; regression EM {self.candidate.regression.exact_match:.3f}")
        if self.serving is not None:
            s = self.serving.test
            lines.append(f"serving:   EM {s.exact_match:.3f}, F1 {s.token_f1:.3f}, ROUGE-L {s.rouge_l:.3f}; "
                         f"regression EM {self.serving.regression.exact_match:.3f}")
        return "\n".join(lines)


def gate(candidate: Evaluation, serving: Evaluation | None, c: GateCriteria) -> GateReport:
    checks: dict[str, dict] = {}

    def check(name: str, value: float, ok: bool, rule: str) -> None:
        checks[name] = {"value": value, "ok": bool(ok), "rule": rule}

    em = candidate.test.exact_match
    check("exact_match", em, em >= c.min_exact_match, f">= {c.min_exact_match}")
    if serving is not None:
        margin = em - serving.test.exact_match
        check("margin_over_serving", margin, margin >= c.min_margin_over_serving, f">= {c.min_margin_over_serving}")
        drop = serving.regression.exact_match - candidate.regression.exact_match
        check("regression_drop", drop, drop <= c.max_regression_drop, f"<= {c.max_regression_drop}")
    worst = min(s.exact_match for s in candidate.robustness.values())
    ratio = worst / em if em else 0.0
    check("robustness_ratio", ratio, ratio >= c.min_robustness_ratio, f">= {c.min_robustness_ratio}")
    gap = candidate.test.slice_gap
    check("slice_gap", gap, gap <= c.max_slice_gap, f"<= {c.max_slice_gap}")
    check("latency_p95_s", candidate.latency_p95_s, candidate.latency_p95_s <= c.max_latency_p95_s,
          f"<= {c.max_latency_p95_s}")
    return GateReport(all(x["ok"] for x in checks.values()), c, candidate, serving, checks)
