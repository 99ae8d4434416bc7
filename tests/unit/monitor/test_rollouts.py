"""The monitor's rollout follower with a fake rollouts consumer: a promotion that changes the
stable version resets the alias's streams; older generations, repeats and undecodable records
change nothing but their offsets, which are durable with the resets."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from driftloop.core.topics import ADAPTER_ROLLOUTS
from driftloop.monitor.checkpoint import Checkpoint
from driftloop.monitor.features import Features, Sample
from driftloop.monitor.rollouts import RolloutFollower
from driftloop.monitor.settings import MonitorSettings
from driftloop.monitor.state import StateStore
from driftloop.monitor.streams import Stream
from tests.unit.monitor.fakes import T0, FakeProducer, FakeRollouts, Record, rollout_record

S = MonitorSettings(reference_size=20, window_size=10)
TOPIC = ADAPTER_ROLLOUTS.name


def stream(model: str, alias: str) -> Stream:
    """A stream with its reference and half a window."""
    st = Stream(model, alias, S, version="v1")
    f = Features(5.0, 7.0, -0.5, 0, 0)
    st.ref_features.extend([f] * 20)
    st.window.extend(Sample("p", f, False, 0.1, T0, np.zeros(4, np.float32)) for _ in range(5))
    return st


def follower(tmp_path: Path) -> tuple[RolloutFollower, FakeRollouts, StateStore, dict[str, Stream]]:
    store = StateStore(tmp_path / "monitor.sqlite")
    streams = {st.key: st for st in (stream("m1", "qa"), stream("m2", "qa"), stream("m1", "faq"))}
    consumer = FakeRollouts()
    return RolloutFollower(consumer, store, Checkpoint(store, FakeProducer(), 30.0), streams), consumer, store, streams


def test_a_promotion_resets_the_alias_streams_durably(tmp_path: Path) -> None:
    f, consumer, store, streams = follower(tmp_path)
    consumer.push(rollout_record(0, "qa", 1, "v2", TOPIC))
    reset = f.poll(T0)
    assert sorted(st.model for st in reset) == ["m1", "m2"]
    for st in reset:
        assert st.version == "v2" and not st.has_reference and st.window == []
    assert streams["m1\x1ffaq"].has_reference  # another alias: untouched
    assert store.rollout("qa") == (1, "v2") and store.next_offset(TOPIC, 0) == 1
    again = StateStore(tmp_path / "monitor.sqlite").load_streams(S)  # durable, with the offset
    assert {k: st.version for k, st in again.items()} == {"m1\x1fqa": "v2", "m2\x1fqa": "v2"}


def test_old_generations_repeats_and_junk_change_nothing_but_offsets(tmp_path: Path) -> None:
    f, consumer, store, streams = follower(tmp_path)
    store.begin()
    store.set_rollout("qa", 1, "v1")  # what the state file knew already
    store.commit()
    consumer.push(rollout_record(0, "qa", 2, "v1", TOPIC))  # a newer generation (a canary), same stable version
    assert f.poll(T0) == [] and store.rollout("qa") == (2, "v1")
    consumer.push(rollout_record(1, "qa", 1, "v9", TOPIC),  # older than the one applied
                  Record(TOPIC, 0, 2, b"qa", None),  # a tombstone
                  Record(TOPIC, 0, 3, b"qa", b"\xff", [("schema", b"driftloop.v1.AdapterRollout")]))  # junk
    assert f.poll(T0) == []
    assert store.rollout("qa") == (2, "v1") and store.next_offset(TOPIC, 0) == 4
    assert all(st.has_reference and st.version == "v1" for st in streams.values())
    assert f.poll(T0) == []  # nothing new: no transaction at all
