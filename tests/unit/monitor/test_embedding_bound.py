"""EMBED_MAX_PER_WINDOW bounds the prompts embedded per window, whatever the batch boundaries; the
reference is always embedded in full, and the load shedder's sample comes on top."""

from __future__ import annotations

from pathlib import Path

import pytest

from driftloop.core.ids import request_bucket
from driftloop.monitor.features import Features, Sample
from driftloop.monitor.settings import MonitorSettings
from driftloop.monitor.streams import Stream, stream_key
from tests.unit.monitor.fakes import T0, predictions
from tests.unit.monitor.test_monitor import Rig, settings


def test_wants_embedding_follows_the_reference_and_each_window() -> None:
    st = Stream("m", "a", MonitorSettings(reference_size=20, window_size=20, embed_max_per_window=10))
    wants = st.wants_embedding([True] * 65)
    assert wants[:20] == [True] * 20  # the reference
    assert [sum(wants[i:i + 20]) for i in (20, 40)] == [10, 10] and wants[20:30] == [True] * 10
    assert wants[60:] == [True] * 5  # a new window
    st.ref_features.extend([Features(1, 1, 1, 0, 0)] * 20)
    st.window.extend(Sample("p", Features(1, 1, 1, 0, 0), False, 0.1, T0, embedding=object()) for _ in range(8))
    assert st.wants_embedding([True] * 14) == [True] * 2 + [False] * 10 + [True] * 2  # 8 already in the window
    assert st.wants_embedding([False, True, True]) == [False, True, True]  # sampled out: a slot not used


@pytest.mark.parametrize("batch", [100, 7])
def test_embed_max_per_window_bounds_the_embeddings_of_every_window(tmp_path: Path, batch: int) -> None:
    rig = Rig(settings(tmp_path, window_size=20, embed_max_per_window=10, trigger_signals=("error_rate",)))
    for start in range(0, 100, batch):
        rig.batch(predictions(range(start, min(start + batch, 100)), T0 - 10))
    st = rig.monitor.streams[stream_key("m", "a")]
    assert st.windows_tested == 4 and len(st.ref_embeddings) == 20
    assert sum(rig.embedder.calls) == 20 + 4 * 10
    assert st.signals["input_embedding"].samples == 10  # the MMD test saw 10 of the window's 20
    samples = rig.metric("driftloop_monitor_window_samples", model="m", adapter_alias="a", detector="input_embedding")
    assert samples == 10


def test_under_lag_only_the_sampled_window_prompts_are_embedded(tmp_path: Path) -> None:
    rig = Rig(settings(tmp_path, window_size=20, embed_max_per_window=20))
    rig.monitor.shedder.update(rig.s.shed_lag)
    rig.batch(predictions(range(120), T0 - 10))
    sampled = sum(request_bucket(f"r{i}") < rig.s.shed_sample_rate for i in range(20, 120))
    assert 10 < sampled < 40 and sum(rig.embedder.calls) == 20 + sampled  # all the reference, a quarter of the rest
    assert len(rig.monitor.streams[stream_key("m", "a")].ref_embeddings) == 20
