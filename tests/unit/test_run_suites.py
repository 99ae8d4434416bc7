"""`make test` runs every environment's suite even when an earlier one failed, prints all summaries
and fails if any suite failed (tools/run_suites.sh)."""

from __future__ import annotations

import subprocess
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "tools" / "run_suites.sh"


def _run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(SCRIPT), *args], capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin", "SUITE_LOG_DIR": str(tmp_path / "logs")})


def test_a_failing_first_suite_does_not_stop_the_second(tmp_path: Path) -> None:
    first = "echo 'FAILED tests/x.py::test_a - boom'; echo '==== 1 failed, 3 passed in 2.0s ===='; exit 1"
    second = f"touch {tmp_path}/second-ran; echo '==== 30 passed in 9.1s ===='"
    got = _run(tmp_path, "serving", first, "monitor", second)
    assert got.returncode == 1, got.stdout
    assert (tmp_path / "second-ran").exists()
    summary = got.stdout.split("=== summary", 1)[1]
    assert "serving  FAILED (exit 1)" in summary and "1 failed, 3 passed" in summary
    assert "FAILED tests/x.py::test_a - boom" in summary
    assert "monitor  ok" in summary and "30 passed in 9.1s" in summary
    assert (tmp_path / "logs" / "monitor.log").read_text().strip().endswith("30 passed in 9.1s ====")


def test_exit_status_is_zero_only_when_every_suite_passed(tmp_path: Path) -> None:
    assert _run(tmp_path, "a", "true", "b", "true").returncode == 0
    assert _run(tmp_path, "a", "true", "b", "exit 3").returncode == 1
    assert _run(tmp_path, "only-name").returncode == 64
