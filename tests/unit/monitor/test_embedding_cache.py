"""Prompts asked again are not embedded again (EMBED_CACHE_SIZE): the same vectors, fewer model
calls, counted by source; least recently used out first; 0 turns the cache off."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from driftloop.core.embedding import EmbeddingCache
from driftloop.core.topics import PREDICTIONS
from driftloop.monitor.streams import stream_key
from tests.unit.monitor.fakes import T0, FakeEmbedder, prediction, records
from tests.unit.monitor.test_monitor import Rig, settings


def test_cached_vectors_are_the_model_s_and_each_text_is_computed_once() -> None:
    model, cache = FakeEmbedder(), EmbeddingCache(3)
    got, hits = cache.embed(["a", "b", "a"], model.embed)
    assert hits == 1 and model.calls == [2]  # "a" twice in one call: computed once
    assert np.array_equal(got[0], got[2]) and np.array_equal(got[1], model.embed(["b"])[0])
    assert all(v.base is None for v in cache._vectors.values())  # copies: no batch array kept alive
    got2, hits = cache.embed(["b", "c", "d"], model.embed)  # "b" cached; "a" (least recent) makes room
    assert hits == 1 and model.calls[-1] == 2 and np.array_equal(got2[0], got[1])
    _, hits = cache.embed(["a"], model.embed)
    assert hits == 0  # evicted
    off = EmbeddingCache(0)
    off.embed(["a"], model.embed)
    assert off.embed(["a"], model.embed)[1] == 0 and model.calls[-2:] == [1, 1]


def _asked_again(ids: range) -> list:
    out = []
    for i in ids:
        e = prediction(i, T0 - 10)
        e.prompt = f"question {i % 10}?"  # 10 prompts, asked again and again
        out.append(e)
    return records(PREDICTIONS, out, ids.start)


def test_a_prompt_asked_again_is_not_embedded_again(tmp_path: Path) -> None:
    rig = Rig(settings(tmp_path, window_size=20, embed_max_per_window=20))
    rig.batch(_asked_again(range(30)))
    rig.batch(_asked_again(range(30, 60)))
    assert sum(rig.embedder.calls) == 10  # each prompt once, in the first batch
    assert rig.metric("driftloop_monitor_embeddings_total", source="model") == 10
    assert rig.metric("driftloop_monitor_embeddings_total", source="cache") == 50
    st = rig.monitor.streams[stream_key("m", "a")]  # the reference: the first 20 requests' prompts
    expected = FakeEmbedder().embed([f"question {i % 10}?" for i in range(20)])
    assert np.array_equal(np.asarray(list(st.ref_embeddings)), expected)
    off = Rig(settings(tmp_path / "off", window_size=20, embed_max_per_window=20, embed_cache_size=0))
    off.batch(_asked_again(range(30)))
    off.batch(_asked_again(range(30, 60)))
    assert sum(off.embedder.calls) == 20  # once per batch: the cache is off
