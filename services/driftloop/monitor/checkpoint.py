"""One checkpoint per consumed batch: the batch's effects become durable together, or not at all.

A batch's handlers change the state file inside the transaction :meth:`Checkpoint.begin` opened
(the join, parked feedback, verdicts) and hand the checkpoint what else the batch produced: the
streams it changed, its RetrainTriggers and the next offset of every partition it read.
:meth:`Checkpoint.commit` then, in this order:

1. records each trigger's dedupe key (a key already recorded was sent before: skipped), sends the
   trigger and waits for Kafka's acknowledgement (acks=all);
2. writes the changed streams and the offsets, and commits the sqlite transaction: state, the
   triggers sent and the offsets in one step;
3. returns, and only then does the caller commit the offsets to Kafka (``EventConsumer.process``
   commits after its ``before_commit``, which is this method).

A failure in 1 or 2 rolls the transaction back and raises; Kafka's offsets stay where they were,
the batch is redelivered, and a restarted monitor replays it from the last durable state (a
trigger that was acknowledged but not recorded is sent again with the same dedupe key, which the
retrainer drops). A failure in 3 leaves the state file ahead of Kafka: the redelivered records lie
below the stored offsets and are skipped. The rollout follower uses the same object with no
triggers (its consumer has no group: its offsets live only in the state file).
"""

from __future__ import annotations

from typing import Protocol

from driftloop.core.topics import RETRAIN_TRIGGERS
from driftloop.monitor.state import StateStore
from driftloop.monitor.streams import Stream
from driftloop.v1 import events_pb2


class Producer(Protocol):
    def send_and_wait(self, topic, key, event, timeout: float = ...): ...


class Checkpoint:
    def __init__(self, store: StateStore, producer: Producer, publish_timeout_s: float) -> None:
        self._store = store
        self._producer = producer
        self._timeout = publish_timeout_s
        self._offsets: dict[tuple[str, int], int] = {}
        self._streams: dict[str, Stream] = {}
        self._triggers: list[events_pb2.RetrainTrigger] = []

    def begin(self) -> None:
        self._clear()
        self._store.begin()

    def store_offset(self, topic: str, partition: int, next_offset: int) -> None:
        self._offsets[(topic, partition)] = max(next_offset, self._offsets.get((topic, partition), -1))

    def changed(self, stream: Stream) -> None:
        self._streams[stream.key] = stream

    def add_trigger(self, trigger: events_pb2.RetrainTrigger) -> None:
        self._triggers.append(trigger)

    def commit(self, now: float) -> list[events_pb2.RetrainTrigger]:
        """Steps 1 and 2 above; returns the triggers sent (not those sent before)."""
        try:
            sent = [t for t in self._triggers if self._publish(t, now)]
            for st in self._streams.values():
                self._store.save_stream(st)
            for (topic, partition), nxt in self._offsets.items():
                self._store.set_offset(topic, partition, nxt)
            self._store.commit()
        except BaseException:
            self.abort()
            raise
        self._clear()
        return sent

    def abort(self) -> None:
        """Nothing of the batch becomes durable (the in-memory streams are ahead: the caller stops)."""
        self._store.rollback()
        self._clear()

    def _publish(self, trigger: events_pb2.RetrainTrigger, now: float) -> bool:
        if not self._store.record_trigger(trigger.dedupe_key, trigger.trigger_id, now):
            return False
        self._producer.send_and_wait(RETRAIN_TRIGGERS, trigger.dedupe_key, trigger, timeout=self._timeout)
        return True

    def _clear(self) -> None:
        self._offsets.clear()
        self._streams.clear()
        self._triggers.clear()
