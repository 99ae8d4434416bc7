"""The review queue for annotators and their labels read back as corrections (retrainer/review.py)."""

from __future__ import annotations

import json
from pathlib import Path

from driftloop.retrainer import review
from driftloop.v1 import events_pb2


def prediction(rid: str, answer: str, logprob: float | None = None, alias: str = "qa", **kw):
    p = events_pb2.PredictionEvent(request_id=rid, adapter_alias=alias, completion=answer, **kw)
    if logprob is not None:
        p.mean_token_logprob = logprob
    return p


def feedback(rid: str, rating, correction: str = ""):
    return events_pb2.FeedbackEvent(request_id=rid, rating=rating, correction=correction)


def test_the_queue_holds_what_the_loop_cannot_judge_alone() -> None:
    preds = [(prediction("a", "Route 1 ends at X.", -0.05), "Where does route 1 end?"),  # rated negative, no fix
             (prediction("b", "Route 2 ends at Y.", -2.5), "Where does route 2 end?"),  # unsure, nobody rated
             (prediction("c", "Route 3 ends at Z.", -2.5), "Where does route 3 end?"),  # corrected already
             (prediction("d", "Route 4 ends at W.", -0.01), "Where does route 4 end?"),  # confident, fine
             (prediction("e", "Route 5 ends at V.", -3.0, alias="other"), "Where does route 5 end?"),
             (prediction("f", "Route 6 ends at U.", -3.0, tags={"source": "evaluation"}), "Where does route 6 end?")]
    fbs = [feedback("a", events_pb2.RATING_NEGATIVE),
           feedback("c", events_pb2.RATING_NEGATIVE, "Route 3 ends at the Zoo.")]
    items = review.queue(preds, fbs, "qa", max_mean_logprob=-1.0)
    assert [(i.request_id, i.reason) for i in items] == [("a", "negative_no_correction"), ("b", "low_confidence")]
    assert items[1].question == "Where does route 2 end?" and items[1].mean_logprob == -2.5 and items[1].label == ""
    assert len(review.queue(preds, fbs, "qa", -1.0, limit=1)) == 1


def test_labelled_lines_come_back_as_corrections_and_bad_lines_are_skipped(tmp_path: Path) -> None:
    path = tmp_path / "review.jsonl"
    items = review.queue([(prediction("a", "Route 1 ends at X.", -3.0), "Where does route 1 end?"),
                          (prediction("b", "Route 2 ends at Y.", -3.0), "Where does route 2 end?")], [], "qa", -1.0)
    review.write_queue(path, items)
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    lines[0]["label"] = "Route 1 ends at the Harbour."  # the annotator's answer; the second left empty
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\nnot json\n" + json.dumps({"label": 5}) + "\n"
                    + json.dumps({"question": "q", "label": "x" * 30_000}) + "\n")
    rows = review.labels(path)
    assert [(r.question, r.answer, r.source, r.rejected) for r in rows] == [
        ("Where does route 1 end?", "Route 1 ends at the Harbour.", "feedback", "Route 1 ends at X.")]
    assert review.labels(None) == [] and review.labels(tmp_path / "missing.jsonl") == []
