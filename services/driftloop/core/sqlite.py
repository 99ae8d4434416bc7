"""The one way the services open their local sqlite files (event spool, monitor state, retrainer
outcomes): WAL journal, explicit transactions, the durability each caller asks for."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Literal


def open_db(path: Path, synchronous: Literal["NORMAL", "FULL"] = "FULL", threads: bool = False) -> sqlite3.Connection:
    """``synchronous=FULL`` for state whose commit gates a Kafka offset commit; ``threads`` allows use
    from several threads (the caller serialises access)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=not threads)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute(f"PRAGMA synchronous={synchronous}")
    return db
