"""A run's dataset: the corrections (waiting, bounded, for enough of them) and confirmed answers from
live traffic, the curated rows, replay of older versions' training rows; cleaned, rid of rows a
correction makes stale, and split.
``Datasets.build`` returns a ``Dataset`` with the report of what each source and rule contributed."""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from driftloop.core.chat import CHAT_ROLES, MAX_MESSAGES
from driftloop.retrainer import review
from driftloop.retrainer.data import Example, clean, data_hash, split
from driftloop.retrainer.registry import Registry
from driftloop.retrainer.settings import RetrainerSettings
from driftloop.retrainer.stale import Embed, StaleRow, drop_stale
from driftloop.retrainer.waiting import poll
from driftloop.v1 import events_pb2

log = logging.getLogger(__name__)

FeedbackSource = Callable[[str, float, float | None], list[Example]]
"""(alias, since, confirmed_since) → examples from live feedback (see collect.collect_feedback)."""


def context_from(value: object) -> tuple[tuple[str, str], ...] | None:
    """A row's ``context`` as a file holds it: absent/null, or a list of [role, content] pairs."""
    if value is None:
        return None
    if (not isinstance(value, list) or len(value) > MAX_MESSAGES
            or not all(isinstance(t, list) and len(t) == 2 and t[0] in CHAT_ROLES and isinstance(t[1], str)
                       for t in value)):
        raise ValueError(f"context must be a list of at most {MAX_MESSAGES} [role, content] pairs, "
                         f"role one of {', '.join(sorted(CHAT_ROLES))}")
    return tuple((r, c) for r, c in value)


def load_jsonl(path: Path | None, source: str) -> list[Example]:
    """Rows of a JSON-lines file: question, answer, optional slice and context (the conversation before
    the question). A malformed line is an error naming the file and line."""
    if path is None or not Path(path).exists():
        return []
    rows = []
    for n, line in enumerate(Path(path).read_text().splitlines(), 1):
        if line.strip():
            try:
                d = json.loads(line)
                if not all(isinstance(d.get(k), str) for k in ("question", "answer")):
                    raise ValueError("question and answer must be strings")
                rows.append(Example(d["question"], d["answer"], source, d.get("slice", ""),
                                    context=context_from(d.get("context"))))
            except (ValueError, KeyError, TypeError) as exc:
                raise ValueError(f"{path}:{n}: not a training row ({type(exc).__name__}: {exc})") from None
    return rows


def write_jsonl(path: Path, rows: list[Example]) -> None:
    with path.open("w") as f:
        for ex in rows:
            row: dict = {"question": ex.question, "answer": ex.answer, "slice": ex.slice}
            if ex.context is not None:
                row["context"] = [list(t) for t in ex.context]
            f.write(json.dumps(row) + "\n")


@dataclass
class Dataset:
    rows: list[Example]  # cleaned
    parts: dict[str, list[Example]]  # train, val, test
    info: dict  # what each source and cleaning rule contributed (the run's dataset.json)
    stale: list[StaleRow] = field(default_factory=list)  # dropped as stale, with the correction that did it

    @property
    def hash(self) -> str:
        return data_hash(self.rows)

    def enough(self, min_train_rows: int) -> bool:
        return len(self.parts["train"]) >= min_train_rows and bool(self.parts["val"]) and bool(self.parts["test"])


class Datasets:
    def __init__(self, settings: RetrainerSettings, registry: Registry, feedback: FeedbackSource,
                 clock: Callable[[], float] = time.time, sleep: Callable[[float], None] = time.sleep,
                 embed: Embed | None = None) -> None:
        self.s = settings
        self.registry = registry
        self.feedback = feedback
        self.clock = clock
        self.sleep = sleep
        self._embed = embed

    def embed(self, texts: list[str]):
        if self._embed is None:  # the MiniLM model loads at the first run that needs it
            from driftloop.core.embedding import Embedder

            self._embed = Embedder().embed
        return self._embed(texts)

    def build(self, trigger: events_pb2.RetrainTrigger) -> Dataset:
        live = self._live(trigger)
        labelled = review.labels(self.s.labels_data)  # annotators' answers: corrections like riders'
        corrections = [x for x in live if x.source == "feedback"] + labelled
        confirmed = [x for x in live if x.source == "confirmed"]
        curated = load_jsonl(self.s.curated_data, "curated")
        replay = self._replay(trigger.adapter_alias, len(corrections))
        rows, report = clean(corrections + confirmed + curated + replay)
        rows, stale = drop_stale(rows, self.embed, self.s.stale_similarity, self.s.stale_rejected_similarity, report,
                                 self.s.stale_rejected_support)
        fresh = sum(r.source == "feedback" for r in rows)
        keep = len(rows) - fresh
        info = {"corrections": len(corrections), "labelled": len(labelled), "confirmed": len(confirmed),
                "curated": len(curated),
                "replay": len(replay), "fresh_rows": fresh, "keep_rows": keep,
                "cleaning": asdict(report), "summary": report.summary(),
                "stale": {src: sum(x.source == src for x in stale) for src in ("curated", "replay", "confirmed")},
                "stale_examples": [x.to_dict() for x in stale[:5]]}  # all of them: the run's stale.jsonl
        if fresh and keep < self.s.replay_ratio * fresh:
            info["warning"] = (f"only {keep} rows of unchanged behaviour for {fresh} corrections (replay ratio "
                               f"{self.s.replay_ratio}): each is rehearsed more often, and slices they do not cover "
                               "may be forgotten; add curated rows or confirmed answers")
            log.warning("trigger %s: %s", trigger.trigger_id, info["warning"])
        return Dataset(rows, split(rows), info, stale)

    def _live(self, trigger: events_pb2.RetrainTrigger) -> list[Example]:
        """Feedback since the lookback; too few corrections to learn from: wait (bounded) while riders send more."""
        episode_start = trigger.window_start.seconds or self.clock()
        since = episode_start - self.s.lookback_s
        confirmed_since = episode_start if self.s.use_confirmed else None

        # An attempt after a gate rejection wants more corrections than the rejected one had (episodes.py).
        wanted = max(self.s.min_corrections, trigger.min_corrections)
        wait_s = self.s.retry_wait_s if trigger.min_corrections else self.s.collect_wait_s

        def corrections(rows: list[Example]) -> int:
            return sum(x.source == "feedback" for x in rows)

        def waiting(rows: list[Example]) -> None:
            log.info("trigger %s: %d corrections, waiting for %d", trigger.trigger_id, corrections(rows), wanted)

        return poll(lambda: self.feedback(trigger.adapter_alias, since, confirmed_since),
                    lambda rows: corrections(rows) >= wanted, wait_s, self.s.collect_poll_s, self.sleep,
                    on_wait=waiting)

    def _replay(self, alias: str, n_corrections: int) -> list[Example]:
        pool: list[Example] = []
        for v in self.registry.versions(alias):
            pool += load_jsonl(v.path / "dataset.jsonl", "replay")
        n = int(self.s.replay_share * max(n_corrections, 1))
        return random.Random(self.s.seed).sample(pool, min(n, len(pool)))
