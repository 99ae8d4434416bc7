"""Failpoints: off unless armed, unknown names refused, an armed one is a real SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from driftloop.core import failpoints


def test_unarmed_points_do_nothing(monkeypatch) -> None:
    monkeypatch.delenv(failpoints.ENV, raising=False)
    failpoints.hit("rollout.canary.published")
    monkeypatch.setenv(failpoints.ENV, "rollout.promote.recorded")
    failpoints.hit("rollout.canary.published")  # another one is armed


def test_unknown_names_are_refused(monkeypatch) -> None:
    with pytest.raises(ValueError, match="unknown failpoint"):
        failpoints.hit("rollout.canary.publishd")
    monkeypatch.setenv(failpoints.ENV, "rollout.canary.published, rollout.nope")
    with pytest.raises(ValueError, match="rollout.nope"):
        failpoints.armed()


def test_an_armed_point_kills_the_process() -> None:
    code = "from driftloop.core import failpoints; failpoints.hit('rollout.canary.journaled'); print('survived')"
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                       env={**os.environ, failpoints.ENV: "rollout.canary.journaled"})
    assert p.returncode == -signal.SIGKILL and "survived" not in p.stdout
