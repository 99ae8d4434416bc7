"""A Stream as the three columns of its row in the state file, and back: ``meta`` (scalars, the open
window, rates, signals, episode; JSON), ``window`` (the open window's embeddings; npz) and
``reference`` (features in ``FEATURES`` order and embeddings; npz, written only when changed)."""

from __future__ import annotations

import io

import numpy as np

from driftloop.monitor.backends import TestResult
from driftloop.monitor.features import Features, Sample
from driftloop.monitor.policy import Episode, FollowUp
from driftloop.monitor.settings import MonitorSettings
from driftloop.monitor.signals import FEATURES, SignalState
from driftloop.monitor.streams import Stream


def _npz(**arrays: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def _stack(vectors: list[np.ndarray]) -> np.ndarray:
    return np.stack(vectors) if vectors else np.zeros((0, 0), np.float32)


def _signal_meta(v: SignalState) -> dict:
    return {"windows_over": v.windows_over, "value": v.value, "samples": v.samples, "tested_at": v.tested_at,
            "result": None if v.result is None else list(v.result.__dict__.values())}


def to_state(st: Stream) -> tuple[dict, bytes, bytes | None]:
    """(scalars as a JSON-able dict, window arrays, reference arrays or None when unchanged)."""
    meta = {
        "model": st.model, "alias": st.alias, "version": st.version, "slice": st.slice,
        "window": [[x.prompt, list(x.features.row()), x.error, x.latency, x.time] for x in st.window],
        "window_embedded": [x.embedding is not None for x in st.window],
        "errors": list(st.errors), "latencies": list(st.latencies), "negatives": list(st.negatives),
        "signals": {k: _signal_meta(v) for k, v in st.signals.items()},
        "episode": None if st.episode is None else st.episode.__dict__,
        "baseline_negative": st.baseline_negative,
        "follow_up": None if st.follow_up is None else st.follow_up.__dict__,
        "last_trigger_at": st.last_trigger_at, "windows_tested": st.windows_tested,
        "last_event_time": st.last_event_time,
    }
    window = _npz(window_emb=_stack([x.embedding for x in st.window if x.embedding is not None]))
    reference = None
    if st.reference_dirty:
        rows = np.array([f.row() for f in st.ref_features], dtype=np.float64).reshape(-1, len(FEATURES))
        reference = _npz(ref_features=rows, ref_emb=_stack(st.ref_embeddings))
        st.reference_dirty = False
    return meta, window, reference


def from_state(s: MonitorSettings, meta: dict, window: bytes, reference: bytes) -> Stream:
    st = Stream(meta["model"], meta["alias"], s, version=meta["version"], slice=meta.get("slice", ""))
    ref = np.load(io.BytesIO(reference))
    st.ref_features = [Features.from_row(row) for row in ref["ref_features"].tolist()]
    st.ref_embeddings = list(ref["ref_emb"]) if ref["ref_emb"].size else []
    win = np.load(io.BytesIO(window))["window_emb"]
    window_emb = list(win) if win.size else []
    for (prompt, features, error, latency, t), embedded in zip(meta["window"], meta["window_embedded"],
                                                               strict=True):
        st.window.append(Sample(prompt, Features.from_row(features), error, latency, t,
                                window_emb.pop(0) if embedded else None))
    st.errors.extend(meta["errors"])
    st.latencies.extend(meta["latencies"])
    st.negatives.extend(meta["negatives"])
    for name, v in meta["signals"].items():
        sig = st.signals.setdefault(name, SignalState())
        sig.windows_over, sig.value, sig.samples, sig.tested_at = (v["windows_over"], v["value"], v["samples"],
                                                                   v["tested_at"])
        sig.result = None if v["result"] is None else TestResult(*v["result"])
    st.episode = None if meta["episode"] is None else Episode(**meta["episode"])
    st.baseline_negative = meta.get("baseline_negative")  # (absent in a state written before rounds)
    st.follow_up = FollowUp(**meta["follow_up"]) if meta.get("follow_up") else None
    st.last_trigger_at = meta["last_trigger_at"]
    st.windows_tested = meta["windows_tested"]
    st.last_event_time = meta["last_event_time"]
    st.reference_dirty = False
    return st
