"""A gate rejection is not the end of an episode: the next attempt, raised by the retrainer itself.

An *episode* is one change the monitor reported (one trigger from it). When the gate rejects the
candidate of attempt ``n``, the retrainer publishes attempt ``n + 1`` of the same episode to the
triggers topic — unless ``REJECTION_RETRIES`` attempts already followed. The follow-up:

* has its own trigger id (a hash of the parent's id and the attempt number: published again after a
  crash it is the same trigger, which the outcome table runs once) and so its own immutable version;
* keeps the episode (same ``window_start``, so it reads the same corrections and the new ones; same
  ``adapter_version``, so it is refused as stale once another version serves);
* waits, bounded by ``RETRY_WAIT_S``, for ``RETRY_MIN_NEW_CORRECTIONS`` more corrections than the
  rejected attempt trained on — the same data would give the same verdict — and ends as ``skipped``
  without them;
* does not pass through the monitor, so the monitor's cooldown never blocks it.
"""

from __future__ import annotations

import hashlib

from driftloop.retrainer.settings import RetrainerSettings
from driftloop.retrainer.triggers import RunOutcome
from driftloop.v1 import events_pb2

ATTEMPT_MARK = "#attempt"


def attempt_of(trigger: events_pb2.RetrainTrigger) -> int:
    return max(1, trigger.attempt)


def follow_up(trigger: events_pb2.RetrainTrigger, rejected: RunOutcome, s: RetrainerSettings,
              now: float) -> events_pb2.RetrainTrigger | None:
    """Attempt n + 1 after ``rejected`` (a gate rejection of ``trigger``'s run), or None when the
    episode has no attempt left."""
    attempt = attempt_of(trigger) + 1
    if attempt > 1 + s.rejection_retries:
        return None
    t = events_pb2.RetrainTrigger()
    t.CopyFrom(trigger)
    t.trigger_id = hashlib.sha256(f"{trigger.trigger_id}{ATTEMPT_MARK}{attempt}".encode()).hexdigest()[:32]
    t.dedupe_key = f"{trigger.dedupe_key.split(ATTEMPT_MARK)[0][:200]}{ATTEMPT_MARK}{attempt}"
    t.attempt = attempt
    t.parent_trigger_id = trigger.trigger_id
    t.min_corrections = rejected.corrections + s.retry_min_new_corrections
    t.created_time.FromNanoseconds(int(now * 1e9))
    t.reason = (f"attempt {attempt} of {1 + s.rejection_retries}: the gate rejected {rejected.version} "
                f"({rejected.detail.splitlines()[0] if rejected.detail else 'no detail'}); trains once "
                f"{t.min_corrections} corrections are in ({s.retry_min_new_corrections} new)")
    return t


def next_step(trigger: events_pb2.RetrainTrigger, follow: events_pb2.RetrainTrigger | None,
              s: RetrainerSettings) -> str:
    """What happens after a rejection, in words for the on-call engineer (the outcome's last line)."""
    if follow is None:
        return (f"Next: nothing — this was attempt {attempt_of(trigger)} of {1 + s.rejection_retries} for this "
                "episode; the serving version stays. Look at the failed criteria and the data above "
                "(runbook DriftloopEpisodeGaveUp).")
    return (f"Next: attempt {follow.attempt} of {1 + s.rejection_retries} (trigger {follow.trigger_id}) trains once "
            f"{follow.min_corrections} corrections are in ({s.retry_min_new_corrections} more than this one "
            f"had; waits at most {s.retry_wait_s:.0f} s).")
