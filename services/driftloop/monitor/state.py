"""The monitor's durable state in one sqlite file: streams (reference sets, windows, signal and
episode state), the prediction↔feedback join, rollout generations, triggers sent, and the Kafka
offsets whose effects are in it. One transaction per consumed batch, committed before the Kafka
offsets, so a restarted monitor resumes with exactly the state its committed offsets imply
(records replayed from Kafka below the stored offsets are skipped)."""

from __future__ import annotations

import json
from pathlib import Path

from driftloop.core.sqlite import open_db
from driftloop.monitor.settings import MonitorSettings
from driftloop.monitor.snapshots import from_state, to_state
from driftloop.monitor.streams import Stream


class StateStore:
    def __init__(self, path: Path) -> None:
        self.db = open_db(path, "FULL")
        self.db.executescript(
            """
            CREATE TABLE IF NOT EXISTS streams (key TEXT PRIMARY KEY, meta TEXT NOT NULL, window BLOB NOT NULL,
                                                reference BLOB NOT NULL);
            CREATE TABLE IF NOT EXISTS offsets (topic TEXT, part INTEGER, next_offset INTEGER,
                                                PRIMARY KEY (topic, part));
            CREATE TABLE IF NOT EXISTS joins (request_id TEXT PRIMARY KEY, stream TEXT NOT NULL, time REAL NOT NULL);
            CREATE INDEX IF NOT EXISTS joins_time ON joins (time);
            CREATE TABLE IF NOT EXISTS pending_feedback (feedback_id TEXT PRIMARY KEY, request_id TEXT NOT NULL,
                                                         negative INTEGER NOT NULL, time REAL NOT NULL);
            CREATE INDEX IF NOT EXISTS pending_request ON pending_feedback (request_id);
            CREATE TABLE IF NOT EXISTS rollouts (alias TEXT PRIMARY KEY, generation INTEGER, stable TEXT);
            CREATE TABLE IF NOT EXISTS triggers (dedupe_key TEXT PRIMARY KEY, trigger_id TEXT, time REAL);
            """
        )
        columns = {row[1] for row in self.db.execute("PRAGMA table_info(joins)")}
        if "verdict" not in columns:  # state written before one-verdict-per-request
            self.db.execute("ALTER TABLE joins ADD COLUMN verdict INTEGER")
        self._load_offsets()

    def _load_offsets(self) -> None:
        self._offsets = {(t, p): o for t, p, o in self.db.execute("SELECT topic, part, next_offset FROM offsets")}

    # -- transactions ------------------------------------------------------------------------------
    def begin(self) -> None:
        self.db.execute("BEGIN")

    def commit(self) -> None:
        self.db.execute("COMMIT")

    def rollback(self) -> None:
        if self.db.in_transaction:
            self.db.execute("ROLLBACK")
            self._load_offsets()  # the cache must not keep offsets that were rolled back

    # -- offsets -----------------------------------------------------------------------------------
    def next_offset(self, topic: str, partition: int) -> int:
        return self._offsets.get((topic, partition), -1)

    def set_offset(self, topic: str, partition: int, next_offset: int) -> None:
        self._offsets[(topic, partition)] = next_offset
        self.db.execute("INSERT OR REPLACE INTO offsets VALUES (?, ?, ?)", (topic, partition, next_offset))

    # -- streams -----------------------------------------------------------------------------------
    def save_stream(self, stream: Stream) -> None:
        meta, window, reference = to_state(stream)
        if reference is None:
            self.db.execute("UPDATE streams SET meta = ?, window = ? WHERE key = ?",
                            (json.dumps(meta), window, stream.key))
        else:
            self.db.execute("INSERT OR REPLACE INTO streams VALUES (?, ?, ?, ?)",
                            (stream.key, json.dumps(meta), window, reference))

    def load_streams(self, settings: MonitorSettings) -> dict[str, Stream]:
        out = {}
        for key, meta, window, reference in self.db.execute("SELECT key, meta, window, reference FROM streams"):
            out[key] = from_state(settings, json.loads(meta), window, reference)
        return out

    # -- join ----------------------------------------------------------------------------------------
    def remember_prediction(self, request_id: str, stream_key: str, t: float) -> bool:
        """False when the request id was already seen (a duplicate event)."""
        cur = self.db.execute("INSERT OR IGNORE INTO joins (request_id, stream, time) VALUES (?, ?, ?)",
                              (request_id, stream_key, t))
        return cur.rowcount == 1

    def stream_of(self, request_id: str) -> tuple[str, bool | None] | None:
        """The stream a request belongs to and the verdict its feedback gave so far (None: none yet)."""
        row = self.db.execute("SELECT stream, verdict FROM joins WHERE request_id = ?", (request_id,)).fetchone()
        return None if row is None else (row[0], None if row[1] is None else bool(row[1]))

    def set_verdict(self, request_id: str, negative: bool) -> None:
        self.db.execute("UPDATE joins SET verdict = ? WHERE request_id = ?", (int(negative), request_id))

    def park_feedback(self, feedback_id: str, request_id: str, negative: bool, t: float) -> None:
        self.db.execute("INSERT OR IGNORE INTO pending_feedback VALUES (?, ?, ?, ?)",
                        (feedback_id, request_id, int(negative), t))

    def take_parked(self, request_id: str) -> bool | None:
        """The latest verdict parked for a request before its prediction arrived (one per request)."""
        rows = self.db.execute("DELETE FROM pending_feedback WHERE request_id = ? RETURNING negative, time",
                               (request_id,)).fetchall()
        return bool(max(rows, key=lambda r: r[1])[0]) if rows else None

    def expire(self, before: float, max_joins: int) -> int:
        """Drop join entries older than ``before`` (and beyond the bound); return how many parked
        feedback events expired unmatched."""
        self.db.execute("DELETE FROM joins WHERE time < ?", (before,))
        (n,) = self.db.execute("SELECT COUNT(*) FROM joins").fetchone()
        if n > max_joins:
            self.db.execute("DELETE FROM joins WHERE request_id IN (SELECT request_id FROM joins ORDER BY time "
                            "LIMIT ?)", (n - max_joins,))
        cur = self.db.execute("DELETE FROM pending_feedback WHERE time < ?", (before,))
        return cur.rowcount

    # -- rollouts and triggers ----------------------------------------------------------------------
    def rollout(self, alias: str) -> tuple[int, str]:
        row = self.db.execute("SELECT generation, stable FROM rollouts WHERE alias = ?", (alias,)).fetchone()
        return (0, "") if row is None else (int(row[0]), row[1])

    def set_rollout(self, alias: str, generation: int, stable: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO rollouts VALUES (?, ?, ?)", (alias, generation, stable))

    def record_trigger(self, dedupe_key: str, trigger_id: str, t: float) -> bool:
        cur = self.db.execute("INSERT OR IGNORE INTO triggers VALUES (?, ?, ?)", (dedupe_key, trigger_id, t))
        return cur.rowcount == 1

    def close(self) -> None:
        self.rollback()
        self.db.close()
