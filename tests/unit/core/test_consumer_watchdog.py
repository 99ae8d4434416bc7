"""EventConsumer's stall watchdog, with a fake kafka-python consumer: a member left without partitions
while its topics have some is closed and opened again (kafka-python 3.0.12 can leave one so for good);
an assigned member, or one whose topics have no partitions, is left alone; idle members back off."""

from __future__ import annotations

from driftloop.core.kafka import EventConsumer
from driftloop.core.settings import KafkaSettings
from driftloop.core.topics import FEEDBACK, PREDICTIONS
from driftloop.v1 import events_pb2


class FakeKafkaConsumer:
    def __init__(self, world: World, **config) -> None:
        self.world, self.config = world, config
        self.subscribed: list[str] = []
        self.closed = False
        self.metadata_asked: list[str] = []

    def partitions_for_topic(self, topic: str) -> set[int]:
        self.metadata_asked.append(topic)
        return self.world.partitions

    def subscribe(self, topics: list[str]) -> None:
        assert self.metadata_asked == topics  # metadata first, then the group
        self.subscribed = topics

    def assignment(self) -> set:
        return self.world.assigned if self is self.world.opened[-1] else set()

    def poll(self, timeout_ms: int = 0, max_records: int | None = None) -> dict:
        return {}

    def close(self, autocommit: bool = True) -> None:
        assert autocommit is False
        self.closed = True


class World:
    def __init__(self) -> None:
        self.now = 0.0
        self.partitions: set[int] = {0}
        self.assigned: set = set()
        self.opened: list[FakeKafkaConsumer] = []

    def factory(self, **config) -> FakeKafkaConsumer:
        c = FakeKafkaConsumer(self, **config)
        self.opened.append(c)
        return c


def _consumer(world: World) -> EventConsumer:
    return EventConsumer(KafkaSettings(bootstrap_servers="k:9092"), [PREDICTIONS, FEEDBACK], "g",
                         events_pb2.PredictionEvent, stall_after_s=60, clock=lambda: world.now,
                         factory=world.factory)


def test_a_member_stuck_without_partitions_leaves_and_joins_again() -> None:
    world = World()
    c = _consumer(world)
    assert world.opened[0].subscribed == [PREDICTIONS.name, FEEDBACK.name]
    world.now = 59
    c.poll()
    assert (len(world.opened), c.reopened) == (1, 0)  # a join takes a while
    world.now = 61
    c.poll()
    assert (len(world.opened), c.reopened) == (2, 1) and world.opened[0].closed and c.raw is world.opened[1]
    world.assigned = {("t", 0)}
    world.now = 500
    c.poll()
    assert len(world.opened) == 2  # assigned: nothing to do


def test_idle_members_back_off_and_topics_without_partitions_are_not_a_stall() -> None:
    world = World()
    c = _consumer(world)
    for t in (61, 62, 183, 184, 425):  # 60 s, then 120 s, then 240 s after each reopen
        world.now = t
        c.poll()
    assert c.reopened == 3
    world.partitions = set()
    world.now = 10_000
    c.poll()
    assert c.reopened == 3
