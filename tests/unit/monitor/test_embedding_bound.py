"""Which prompts are embedded: the whole reference; in each window a uniform sample chosen by a
salted hash of the request id (share EMBED_MAX_PER_WINDOW / WINDOW_SIZE, or the load shedder's lower
share under lag), never more than EMBED_MAX_PER_WINDOW, whatever the batch boundaries; the same
prompts on replay; independent of the canary split; and no MMD verdict on too few embeddings."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from driftloop.core.ids import request_bucket
from driftloop.monitor.backends import ScipyBackend
from driftloop.monitor.detectors import PreparedReference, run_window_tests
from driftloop.monitor.features import Features, Sample
from driftloop.monitor.settings import MonitorSettings
from driftloop.monitor.shedding import embedding_draw
from driftloop.monitor.streams import Stream, stream_key
from tests.unit.monitor.fakes import T0, predictions
from tests.unit.monitor.test_monitor import Rig, settings


def _drawn(ids: range, share: float) -> list[int]:
    return [i for i in ids if embedding_draw(f"r{i}") < share]


def test_wants_embedding_follows_the_reference_and_each_window() -> None:
    st = Stream("m", "a", MonitorSettings(reference_size=20, window_size=20, embed_max_per_window=10))
    draws = [0.9, 0.1] * 40
    wants = st.wants_embedding(draws[:65], 0.5)
    assert wants[:20] == [True] * 20  # the reference, whatever the draws
    assert wants[20:60] == [False, True] * 20  # the windows: the draws below the share, spread over the window
    assert wants[60:] == [False, True, False, True, False]  # a new window
    st.ref_features.extend([Features(1, 1, 1, 0, 0)] * 20)
    st.window.extend(Sample("p", Features(1, 1, 1, 0, 0), False, 0.1, T0, embedding=object()) for _ in range(8))
    # 8 already embedded in the open window: 2 more at most, then the next window starts afresh
    assert st.wants_embedding([0.0] * 14, 0.5) == [True] * 2 + [False] * 10 + [True] * 2
    assert st.wants_embedding([0.7, 0.2, 0.2], 0.5) == [False, True, True]


@pytest.mark.parametrize("batch", [100, 7])
def test_every_window_embeds_its_drawn_prompts_at_most_the_bound(tmp_path: Path, batch: int) -> None:
    rig = Rig(settings(tmp_path, window_size=20, embed_max_per_window=10, mmd_min_window=2,
                       trigger_signals=("error_rate",)))
    for start in range(0, 220, batch):
        rig.batch(predictions(range(start, min(start + batch, 220)), T0 - 10))
    st = rig.monitor.streams[stream_key("m", "a")]
    assert st.windows_tested == 10 and len(st.ref_embeddings) == 20
    per_window = [_drawn(range(w, w + 20), 0.5)[:10] for w in range(20, 220, 20)]
    assert sum(rig.embedder.calls) == 20 + sum(len(x) for x in per_window)
    assert all(len(x) <= 10 for x in per_window) and any(len(x) < 10 for x in per_window)
    # spread over the window, not its first half
    assert any(i - w >= 10 for w, x in zip(range(20, 220, 20), per_window, strict=True) for i in x)
    samples = rig.metric("driftloop_monitor_window_samples", model="m", adapter_alias="a", detector="input_embedding")
    assert samples == len(per_window[-1])
    assert rig.metric("driftloop_monitor_embedding_sample_rate") == 0.5


def test_a_replayed_batch_embeds_the_same_prompts(tmp_path: Path) -> None:
    s = settings(tmp_path, window_size=20, embed_max_per_window=10)
    first = Rig(s)
    first.batch(predictions(range(100), T0 - 10))
    again = Rig(settings(tmp_path / "again", window_size=20, embed_max_per_window=10))
    again.batch(predictions(range(50), T0 - 10))
    again.batch(predictions(range(50, 100), T0 - 10))
    one, two = (r.monitor.streams[stream_key("m", "a")] for r in (first, again))
    assert [x.embedding is not None for x in one.window] == [x.embedding is not None for x in two.window]
    assert sum(first.embedder.calls) == sum(again.embedder.calls)


def test_under_lag_the_shedders_share_applies_when_lower(tmp_path: Path) -> None:
    rig = Rig(settings(tmp_path, window_size=20, embed_max_per_window=20))
    assert rig.monitor.shedder.update(rig.s.shed_lag) == rig.s.shed_sample_rate
    rig.batch(predictions(range(120), T0 - 10))
    sampled = len(_drawn(range(20, 120), rig.s.shed_sample_rate))
    assert 10 < sampled < 40 and sum(rig.embedder.calls) == 20 + sampled  # all the reference, a quarter of the rest
    assert len(rig.monitor.streams[stream_key("m", "a")].ref_embeddings) == 20
    bounded = Rig(settings(tmp_path / "b", window_size=100, embed_max_per_window=10))
    assert bounded.monitor.shedder.update(rig.s.shed_lag) == 0.1  # the bound is lower than the shedder's share


def test_the_embedding_sample_is_independent_of_the_canary_split() -> None:
    ids = [f"req-{i}" for i in range(20_000)]
    canary = [i for i in ids if request_bucket(i) < 0.25]  # what inference sends to a 25 % canary
    share = np.mean([embedding_draw(i) < 0.25 for i in canary])
    assert 0.22 < share < 0.28  # a quarter of the canary's requests, not all of them


def test_too_few_window_embeddings_get_no_mmd_verdict() -> None:
    s = MonitorSettings(reference_size=30, window_size=20, embed_max_per_window=10, mmd_min_window=5)
    rng = np.random.default_rng(0)
    f = Features(5, 7, -0.5, 0, 0)
    reference = PreparedReference(ScipyBackend(0.01, 50), [f] * 30, list(rng.normal(size=(30, 8))))

    def window(embedded: int) -> list[Sample]:
        return [Sample("p", f, False, 0.1, T0, rng.normal(size=8) if i < embedded else None) for i in range(20)]

    for few in (1, 4):  # with one, MMD² is 0/0: NaN, p = 0 -- a false alarm (alibi: ZeroDivisionError)
        assert "input_embedding" not in run_window_tests(s, reference, window(few))
    tested = run_window_tests(s, reference, window(5))
    assert tested["input_embedding"].samples == 5 and np.isfinite(tested["input_embedding"].result.statistic)


def test_settings_refuse_an_mmd_that_could_never_run() -> None:
    with pytest.raises(ValueError, match="mmd_min_window"):
        MonitorSettings(embed_max_per_window=10, mmd_min_window=11)
