"""The on-disk event log: order, persistence across reopen, and the explicit drop-oldest bound."""

from __future__ import annotations

from pathlib import Path

from driftloop.core.spool import EventSpool


def rows(n: int, start: int = 0, size: int = 100) -> list[tuple[str, bytes, str, bytes]]:
    return [("t", f"k{i}".encode(), "s", bytes(size)) for i in range(start, start + n)]


def test_fifo_and_delete(tmp_path: Path) -> None:
    spool = EventSpool(tmp_path / "s.db", 1 << 20)
    assert spool.append(rows(5)) == 0
    batch = spool.peek(3)
    assert [e.key for e in batch] == [b"k0", b"k1", b"k2"]
    spool.delete(batch[:2])
    assert [e.key for e in spool.peek(10)] == [b"k2", b"k3", b"k4"]
    assert spool.rows == 3
    spool.close()


def test_survives_reopen(tmp_path: Path) -> None:
    spool = EventSpool(tmp_path / "s.db", 1 << 20)
    spool.append(rows(4))
    spool.close()
    again = EventSpool(tmp_path / "s.db", 1 << 20)
    assert again.rows == 4 and again.bytes == sum(len(k) + len(v) for _, k, _, v in rows(4))
    assert [e.key for e in again.peek(10)] == [b"k0", b"k1", b"k2", b"k3"]
    again.close()


def test_full_spool_drops_oldest_and_says_how_many(tmp_path: Path) -> None:
    spool = EventSpool(tmp_path / "s.db", max_bytes=1000)
    assert spool.append(rows(8)) == 0  # 8 × 102 bytes = 816
    dropped = spool.append(rows(4, start=8))  # 1224 bytes: the two oldest must go
    assert dropped == 3 or dropped == 2
    kept = [e.key for e in spool.peek(100)]
    assert kept[-1] == b"k11" and kept[0] == f"k{dropped}".encode()
    assert spool.bytes <= 1000
    spool.delete(spool.peek(100))
    assert spool.rows == 0 and spool.bytes == 0
    spool.close()
