"""Named crash points, so tests can kill a real process at an exact line (etcd's gofail and TiKV's
fail-rs do the same for their crash-recovery tests).

``DRIFTLOOP_FAILPOINTS`` (comma-separated names) makes the process SIGKILL itself when it reaches
one of them: exactly what a ``kill -9`` at that line would do — no ``finally``, no flush, no commit.
Never set in a deployment; the chart does not expose it. The names in use are listed in
``POINTS`` so a typo in a test fails loudly instead of never firing.
"""

from __future__ import annotations

import logging
import os
import signal

log = logging.getLogger(__name__)

ENV = "DRIFTLOOP_FAILPOINTS"

# retrainer/rollouts.py: for each action, after the step is journaled (not yet published), after it
# is published and applied (status not yet recorded), and after the version's status is recorded.
POINTS = frozenset(f"rollout.{action}.{point}" for action in ("canary", "promote", "rollback")
                   for point in ("journaled", "published", "recorded"))


def armed() -> set[str]:
    names = {n.strip() for n in os.environ.get(ENV, "").split(",") if n.strip()}
    unknown = names - POINTS
    if unknown:
        raise ValueError(f"{ENV} names unknown failpoints: {sorted(unknown)}")
    return names


def hit(name: str) -> None:
    """Kill this process now if ``name`` is armed."""
    if name not in POINTS:
        raise ValueError(f"unknown failpoint {name!r}")
    if os.environ.get(ENV) and name in armed():
        log.error("failpoint %s: killing this process (SIGKILL)", name)
        for h in logging.getLogger().handlers:
            h.flush()
        os.kill(os.getpid(), signal.SIGKILL)
