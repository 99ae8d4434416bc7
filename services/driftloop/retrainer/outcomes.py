"""What happened to each trigger, durable in sqlite (``outcomes.sqlite`` in the state directory):
the retrainer's idempotence by trigger id and dedupe key, and the ``outcomes`` command's answer."""

from __future__ import annotations

import json
import time
from pathlib import Path

from driftloop.core.sqlite import open_db
from driftloop.retrainer.settings import RetrainerSettings
from driftloop.retrainer.triggers import RunOutcome
from driftloop.v1 import events_pb2


def path(settings: RetrainerSettings) -> Path:
    return settings.state_dir / "outcomes.sqlite"


class Outcomes:
    """What happened to each trigger. ``started`` without ``finished`` means a run was interrupted."""

    def __init__(self, path: Path) -> None:
        self.db = open_db(path, "FULL", threads=True)
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS outcomes (trigger_id TEXT PRIMARY KEY, dedupe_key TEXT, alias TEXT,"
            " version TEXT, result TEXT, detail TEXT, attempts INTEGER, started REAL, finished REAL)"
        )

    def finished(self, trigger_id: str, dedupe_key: str) -> tuple | None:
        return self.db.execute(
            "SELECT trigger_id, result FROM outcomes WHERE finished IS NOT NULL AND (trigger_id = ? OR dedupe_key = ?)",
            (trigger_id, dedupe_key)).fetchone()

    def start(self, t: events_pb2.RetrainTrigger) -> int:
        self.db.execute(
            "INSERT INTO outcomes (trigger_id, dedupe_key, alias, attempts, started) VALUES (?, ?, ?, 1, ?) "
            "ON CONFLICT(trigger_id) DO UPDATE SET attempts = attempts + 1, started = excluded.started",
            (t.trigger_id, t.dedupe_key, t.adapter_alias, time.time()))
        return self.db.execute("SELECT attempts FROM outcomes WHERE trigger_id = ?", (t.trigger_id,)).fetchone()[0]

    def skip(self, t: events_pb2.RetrainTrigger, reason: str) -> None:
        """A trigger refused before any work (stale, unknown alias): an outcome with no version."""
        now = time.time()
        self.db.execute(
            "INSERT INTO outcomes (trigger_id, dedupe_key, alias, version, result, detail, attempts, started, finished)"
            " VALUES (?, ?, ?, '', 'skipped', ?, 0, ?, ?) ON CONFLICT(trigger_id) DO NOTHING",
            (t.trigger_id, t.dedupe_key, t.adapter_alias, reason, now, now))

    def finish(self, o: RunOutcome) -> None:
        self.db.execute("UPDATE outcomes SET version = ?, result = ?, detail = ?, finished = ? WHERE trigger_id = ?",
                        (o.version, o.result, o.detail, time.time(), o.trigger_id))

    def all(self) -> list[dict]:
        cur = self.db.execute("SELECT * FROM outcomes ORDER BY started")
        cols = [c[0] for c in cur.description]
        return [dict(zip(cols, row, strict=True)) for row in cur.fetchall()]


def outcomes_json(settings: RetrainerSettings) -> str:
    return json.dumps(Outcomes(path(settings)).all(), indent=2)
