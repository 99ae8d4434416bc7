"""What a RetrainTrigger may start, and what came of it: the identifier rules and the admission
checks before any work (``Admission``), the version name a trigger's run registers
(``version_for``), and the run's result (``RunOutcome``)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from driftloop.core import ids
from driftloop.retrainer.inference_client import RouteReader
from driftloop.v1 import events_pb2


@dataclass
class RunOutcome:
    trigger_id: str
    alias: str
    version: str
    result: str  # promoted, rejected, rolled_back, failed, skipped
    detail: str = ""
    corrections: int = 0  # the run's dataset had this many (an attempt after a rejection wants more)


def outcome(trigger: events_pb2.RetrainTrigger, version: str, result: str, detail: str = "",
            corrections: int = 0) -> RunOutcome:
    return RunOutcome(trigger.trigger_id, trigger.adapter_alias, version, result, detail, corrections)


class TriggerRefused(ValueError):
    """A trigger that must not start a run; ``reason`` is the dead letter's error type."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def check_trigger(t: events_pb2.RetrainTrigger) -> None:
    """The identifier rules for a trigger's fields, before any of them becomes a name or a path."""
    try:
        ids.TRIGGER_ID.check(t.trigger_id)
        ids.ALIAS.check(t.adapter_alias)
        ids.VERSION.check(t.adapter_version, required=False)
        ids.MODEL.check(t.model, required=False)
    except ids.InvalidIdentifier as exc:
        raise TriggerRefused("invalid_identifier", str(exc)) from None
    if len(t.dedupe_key) > 256 or not t.dedupe_key.isprintable():
        raise TriggerRefused("invalid_identifier", "dedupe_key must be printable and at most 256 characters")
    try:
        ids.TRIGGER_ID.check(t.parent_trigger_id, required=False)
    except ids.InvalidIdentifier as exc:
        raise TriggerRefused("invalid_identifier", str(exc)) from None


def version_for(trigger_id: str) -> str:
    """The version a trigger's run registers: a run restarted after a crash finds its own version (or
    its absence) and never produces a second one."""
    return f"r-{trigger_id[:12]}"


class Admission:
    """Checks before any work: identifiers, the alias is served, the trigger is not stale."""

    def __init__(self, max_age_s: float, registered: Callable[[str, str], bool], routes: RouteReader,
                 clock: Callable[[], float] = time.time, max_attempt: int = 3,
                 max_corrections: int = 1_000_000) -> None:
        self.max_age_s = max_age_s
        self.max_attempt = max_attempt  # 1 + REJECTION_RETRIES
        self.max_corrections = max_corrections
        self.registered = registered
        self.routes = routes
        self.clock = clock

    def __call__(self, trigger: events_pb2.RetrainTrigger) -> None:
        """Raises TriggerRefused (the record is dead-lettered; nothing trains); a replica that cannot
        be reached raises grpc.RpcError (transient: the trigger is retried)."""
        check_trigger(trigger)
        if trigger.attempt > self.max_attempt:
            raise TriggerRefused("invalid", f"attempt {trigger.attempt} of an episode allowed {self.max_attempt}")
        if trigger.min_corrections > self.max_corrections:
            raise TriggerRefused("invalid", f"min_corrections {trigger.min_corrections} above {self.max_corrections}")
        now = self.clock()
        age = now - (trigger.created_time.seconds or now)
        if age > self.max_age_s:
            raise TriggerRefused("stale", f"trigger is {age:.0f} s old (max_trigger_age_s {self.max_age_s:.0f})")
        if self.registered(trigger.adapter_alias, version_for(trigger.trigger_id)):
            return  # this trigger's own run already registered its version: resume it
        route = self.routes.route(trigger.adapter_alias)
        if route is None:
            raise TriggerRefused("unknown_alias", f"inference routes no alias {trigger.adapter_alias!r}")
        if trigger.adapter_version and route.stable_version != trigger.adapter_version:
            raise TriggerRefused("stale", f"the episode began on {trigger.adapter_version}; "
                                          f"{trigger.adapter_alias} now serves {route.stable_version}")
