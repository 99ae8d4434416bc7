"""Base-model benchmark (before any fine-tuning): each candidate base model answers a sample of the
task (the curated data) greedily with transformers; exact match, token F1, ROUGE-L, latency and
size side by side, so the base is chosen on evidence rather than by name."""

from __future__ import annotations

import random
import time
from pathlib import Path

from driftloop.retrainer.dataset import load_jsonl
from driftloop.retrainer.evaluate import score
from driftloop.retrainer.settings import RetrainerSettings
from driftloop.retrainer.train import greedy_answers


def answer_with(model_dir: Path, questions: list[str], template: str) -> tuple[list[str], float, int]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    t0 = time.perf_counter()
    out = greedy_answers(model, tok, questions, template, batch=32)
    per_q = (time.perf_counter() - t0) / max(1, len(questions))
    return out, per_q, sum(p.numel() for p in model.parameters())


def compare(models: list[Path], settings: RetrainerSettings, sample: int = 200) -> str:
    rows = load_jsonl(settings.curated_data, "curated")
    if not rows:
        raise SystemExit("no task sample: set DRIFTLOOP_RETRAINER_CURATED_DATA to a JSONL of question/answer rows")
    rows = random.Random(settings.seed).sample(rows, min(sample, len(rows)))
    lines = ["| base model | params | exact match | token F1 | ROUGE-L | worst slice | s/question |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for m in models:
        answers, per_q, params = answer_with(m, [r.question for r in rows], settings.prompt_template)
        s = score(rows, answers)
        worst = min(s.by_slice.values()) if s.by_slice else s.exact_match
        lines.append(f"| {m} | {params / 1e6:.2f}M | {s.exact_match:.3f} | {s.token_f1:.3f} | {s.rouge_l:.3f} | "
                     f"{worst:.3f} | {per_q:.3f} |")
    return "\n".join(lines)
