"""Human in the loop for the answers the loop cannot judge by itself: a review queue for annotators,
and their labels read back as corrections.

``queue`` picks, from an alias's predictions since a time, the ones the loop is unsure about:

* ``negative_no_correction`` — a rider rated the answer negative but sent no correct answer (the
  loop knows it is wrong, not what is right);
* ``low_confidence`` — the engine's mean token logprob of the answer is below ``max_mean_logprob``
  (nobody complained, but the model hesitated).

Each becomes one JSONL line ``{request_id, question, answer, reason, mean_logprob, label}`` with an
empty ``label`` for the annotator to fill with the correct answer (or leave empty: no opinion).
``labels`` reads such a file back: every line with a label is a correction (source ``feedback``, the
model's answer as the rejected one) that the retrainer trains on like a rider's (setting
``LABELS_DATA``). The file is untrusted input like any other: malformed lines are skipped and
counted, and the cleaning rules (PII, format, size) apply to labels as to every row.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

from driftloop.retrainer.data import Example
from driftloop.v1 import events_pb2

log = logging.getLogger(__name__)

MAX_LINE = 20_000  # characters of one label line; longer ones are skipped


@dataclass(frozen=True)
class ReviewItem:
    request_id: str
    question: str
    answer: str
    reason: str  # negative_no_correction, low_confidence
    mean_logprob: float | None
    label: str = ""


def queue(predictions: Iterable[tuple[events_pb2.PredictionEvent, str]],
          feedback: Iterable[events_pb2.FeedbackEvent], alias: str, max_mean_logprob: float,
          limit: int = 1000) -> list[ReviewItem]:
    """The review items of ``alias``: ``predictions`` are (event, its question) pairs."""
    verdict: dict[str, events_pb2.FeedbackEvent] = {}
    for fb in feedback:
        verdict[fb.request_id] = fb  # one verdict per request: the latest counts (as in the monitor)
    out: list[ReviewItem] = []
    for p, question in predictions:
        if p.adapter_alias != alias or p.error_code or p.tags.get("source") == "evaluation":
            continue
        fb = verdict.get(p.request_id)
        logprob = p.mean_token_logprob if p.HasField("mean_token_logprob") else None
        if fb is not None and fb.correction.strip():
            continue  # already a correction
        if fb is not None and fb.rating == events_pb2.RATING_NEGATIVE:
            reason = "negative_no_correction"
        elif logprob is not None and logprob < max_mean_logprob:
            reason = "low_confidence"
        else:
            continue
        out.append(ReviewItem(p.request_id, question, p.completion.strip(), reason, logprob))
        if len(out) >= limit:
            break
    return out


def write_queue(path: Path, items: list[ReviewItem]) -> None:
    with path.open("w") as f:
        for item in items:
            f.write(json.dumps(asdict(item)) + "\n")


def labels(path: Path | None) -> list[Example]:
    """The labelled lines of a review file as corrections; malformed lines are skipped (and logged)."""
    if path is None or not Path(path).exists():
        return []
    rows, skipped = [], 0
    for line in Path(path).read_text(errors="replace").splitlines():
        if not line.strip():
            continue
        try:
            if len(line) > MAX_LINE:
                raise ValueError("line too long")
            d = json.loads(line)
            label, question = d.get("label", ""), d.get("question", "")
            if not isinstance(label, str) or not isinstance(question, str):
                raise ValueError("question and label must be strings")
            answer = d.get("answer", "")
            rejected = answer if isinstance(answer, str) else ""
        except (ValueError, AttributeError) as exc:
            skipped += 1
            log.debug("review label skipped: %s", exc)
            continue
        if label.strip() and question.strip():
            rows.append(Example(question, label, "feedback", "review", 0.0, rejected))
    if skipped:
        log.warning("%s: %d malformed label lines skipped", path, skipped)
    return rows
