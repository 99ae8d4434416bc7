"""`kafka up` / `kafka down` (what make kafka-up / kafka-down run) leave no java process behind."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from driftloop.local.kafka import free_port

pytestmark = pytest.mark.integration


def _java_pids(state_dir: Path) -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes()
            state = (proc / "stat").read_text().split(") ", 1)[1][:1]
        except OSError:
            continue
        if b"kafka.Kafka" in cmdline and str(state_dir).encode() in cmdline and state != "Z":
            pids.append(int(proc.name))
    return pids


def test_up_then_down_leaves_no_process(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "DRIFTLOOP_LOCAL_KAFKA_PORT": str(free_port()),
        "DRIFTLOOP_LOCAL_KAFKA_CONTROLLER_PORT": str(free_port()),
        "DRIFTLOOP_LOCAL_KAFKA_STATE_DIR": str(tmp_path),
    }
    cli = [sys.executable, "-m", "driftloop.local.kafka"]
    up = subprocess.run([*cli, "up"], env=env, capture_output=True, text=True, timeout=180)
    assert up.returncode == 0, up.stderr
    assert up.stdout.strip() == f"127.0.0.1:{env['DRIFTLOOP_LOCAL_KAFKA_PORT']}"
    try:
        assert len(_java_pids(tmp_path)) == 1
        status = subprocess.run([*cli, "status"], env=env, capture_output=True, text=True)
        assert status.returncode == 0 and "running" in status.stdout
        # `up` again is idempotent: same broker, topics ensured.
        again = subprocess.run([*cli, "up"], env=env, capture_output=True, text=True, timeout=60)
        assert again.returncode == 0 and len(_java_pids(tmp_path)) == 1
    finally:
        down = subprocess.run([*cli, "down"], env=env, capture_output=True, text=True, timeout=60)
    assert down.returncode == 0, down.stderr
    assert _java_pids(tmp_path) == []
    status = subprocess.run([*cli, "status"], env=env, capture_output=True, text=True)
    assert status.returncode == 1
