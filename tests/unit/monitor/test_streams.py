"""Stream windows, tests and the trigger policy, with both drift backends (no Kafka, no embedder)."""

from __future__ import annotations

import numpy as np
import pytest

from driftloop.monitor.backends import AlibiBackend, ScipyBackend
from driftloop.monitor.features import Features, Sample
from driftloop.monitor.settings import MonitorSettings
from driftloop.monitor.snapshots import from_state, to_state
from driftloop.monitor.streams import Stream

S = MonitorSettings(reference_size=100, window_size=50, sustained_windows=2, clear_windows=2, cooldown_s=0,
                    min_samples=20, trigger_signals=("input_embedding", "negative_feedback_rate"))
NOW = 1_700_000_000.0


def sample(rng: np.random.Generator, shift: float, i: int) -> Sample:
    emb = rng.normal(shift, 1.0, 8).astype(np.float32)
    return Sample(f"p{i}", Features(10.0 + rng.normal(), 20.0 + rng.normal(), -0.5, 0, 0), False, 0.1, float(i), emb)


@pytest.fixture(params=["alibi", "scipy"])
def backend(request):
    return AlibiBackend(0.01, 50) if request.param == "alibi" else ScipyBackend(0.01, 50)


def feed(stream, backend, rng, n, shift, start=0, now=NOW):
    """The triggers of n predictions."""
    closed = [stream.add_prediction(sample(rng, shift, i), backend, now) for i in range(start, start + n)]
    return [c.trigger for c in closed if c is not None and c.trigger is not None]


def test_one_trigger_per_episode_then_hysteresis(backend) -> None:
    rng = np.random.default_rng(0)
    st = Stream("m", "a", S)
    assert feed(st, backend, rng, 100, 0.0) == [] and st.has_reference
    assert feed(st, backend, rng, 300, 0.0, 100) == []  # no false alarm in 6 windows
    assert st.episode is None
    decisions = feed(st, backend, rng, 300, 2.0, 400)
    assert len(decisions) == 1  # sustained over 2 windows, then one trigger only
    d = decisions[0]
    assert d.firing == ["input_embedding"] and d.signals["input_embedding"].windows_over >= 2
    assert st.episode is not None and st.episode.triggered
    # Traffic returns to normal: after clear_windows quiet windows the episode ends.
    feed(st, backend, rng, 100, 0.0, 700)
    assert st.episode is None


def test_cooldown_blocks_a_second_trigger() -> None:
    s = S.model_copy(update={"cooldown_s": 3600})
    backend = ScipyBackend(0.01, 50)
    rng = np.random.default_rng(1)
    st = Stream("m", "a", s)
    feed(st, backend, rng, 100, 0.0)
    assert len(feed(st, backend, rng, 150, 2.0, 100)) == 1
    feed(st, backend, rng, 150, 0.0, 250)  # episode ends
    assert feed(st, backend, rng, 200, 2.0, 400) == []  # new episode, but within the cooldown


def test_negative_feedback_rate_needs_min_samples() -> None:
    backend = ScipyBackend(0.01, 50)
    rng = np.random.default_rng(2)
    st = Stream("m", "a", S)
    feed(st, backend, rng, 100, 0.0)
    for _ in range(10):
        st.add_feedback(True)
    assert feed(st, backend, rng, 50, 0.0, 100) == []  # 10 negatives < min_samples
    for _ in range(30):
        st.add_feedback(True)
    decisions = feed(st, backend, rng, 50, 0.0, 150)
    assert len(decisions) == 1 and decisions[0].firing == ["negative_feedback_rate"]
    assert decisions[0].signals["negative_feedback_rate"].value == 1.0
    assert (decisions[0].feedback, decisions[0].negatives) == (40, 40)  # the evidence behind the verdict


def test_state_round_trip() -> None:
    backend = ScipyBackend(0.01, 50)
    rng = np.random.default_rng(3)
    st = Stream("m", "a", S, version="v1")
    feed(st, backend, rng, 130, 0.0)
    meta, window, reference = to_state(st)
    back = from_state(S, meta, window, reference)
    assert back.has_reference and len(back.window) == 30 and back.version == "v1"
    assert np.allclose(back.ref_embeddings[5], st.ref_embeddings[5])
    assert back.window[3].embedding is not None and np.allclose(back.window[3].embedding, st.window[3].embedding)
    assert back.ref_features == st.ref_features and back.window[3].features == st.window[3].features


def test_reset_rebuilds_reference() -> None:
    backend = ScipyBackend(0.01, 50)
    st = Stream("m", "a", S)
    feed(st, backend, np.random.default_rng(4), 160, 0.0)
    st.reset("v2")
    assert not st.has_reference and st.version == "v2" and st.window == []


# -- rounds: after a promotion, until the stream is back to its own normal (policy.py) ---------------
R = S.model_copy(update={"trigger_signals": ("negative_feedback_rate",), "rate_window": 50, "min_samples": 20,
                         "follow_up_margin": 0.05, "follow_up_windows": 2, "max_rounds": 3, "cooldown_s": 600})


def rated(stream, backend, rng, windows: int, negative_share: float, start: int, now: float = NOW) -> list:
    """``windows`` windows of in-distribution traffic, each prediction rated (negative at that share)."""
    out = []
    for w in range(windows):
        for k in range(R.window_size):
            stream.add_feedback(k < negative_share * R.window_size)
        out += feed(stream, backend, rng, R.window_size, 0.0, start + w * R.window_size, now)
    return out


def episode_promoted(backend, rng) -> tuple[Stream, object]:
    """A stream at 10 % negative feedback, then 60 % (one trigger), then the version it led to promoted."""
    st = Stream("m", "a", R, version="v1")
    feed(st, backend, rng, 100, 0.0)  # the reference
    assert rated(st, backend, rng, 2, 0.1, 100) == [] and st.baseline_negative == pytest.approx(0.1)
    first = rated(st, backend, rng, 2, 0.6, 200)
    assert len(first) == 1 and st.episode.baseline_negative == pytest.approx(0.1)
    st.reset("v2")  # the promotion the trigger led to
    assert st.follow_up is not None and st.episode is None and st.follow_up.round == 1
    feed(st, backend, rng, 100, 0.0, 300)  # the new version's reference
    return st, first[0]


def test_quality_still_worse_than_before_the_change_raises_bounded_follow_up_rounds() -> None:
    backend = ScipyBackend(0.01, 50)
    rng = np.random.default_rng(5)
    st, first = episode_promoted(backend, rng)
    # 20 % negative on v2: under the absolute 0.3 threshold, above the pre-change 10 % + 5 points
    second = rated(st, backend, rng, 4, 0.2, 400)
    assert len(second) == 1  # one round, then pending (cooldown) until its promotion
    d = second[0]
    assert d.dedupe_key == f"{first.dedupe_key}#round2" and d.window_start == first.window_start
    assert d.version == "v2" and "follow-up round 2 of 3" in d.reason and "pre-change 0.100" in d.reason
    assert d.thresholds == {"negative_feedback_rate": pytest.approx(0.15)}
    assert st.follow_up_events == ["raised"]
    st.reset("v3")  # round 2 promoted; still worse
    feed(st, backend, rng, 100, 0.0, 600)
    third = rated(st, backend, rng, 3, 0.2, 700)
    assert [x.dedupe_key for x in third] == [f"{first.dedupe_key}#round3"]
    st.reset("v4")
    feed(st, backend, rng, 100, 0.0, 900)
    assert rated(st, backend, rng, 3, 0.2, 1000) == []  # max_rounds 3: no fourth
    assert st.follow_up is None and st.follow_up_events == ["raised", "raised", "exhausted"]


def test_a_round_still_running_is_not_raised_again() -> None:
    """A round's run can take longer than the cooldown (the demo's second round: 11 minutes); until
    its promotion, or ROUND_PENDING_S, no further round is raised (the demo once raised round 3 while
    round 2 still trained, and the episode then ended 'exhausted' at the first window after it)."""
    backend = ScipyBackend(0.01, 50)
    rng = np.random.default_rng(5)
    st, first = episode_promoted(backend, rng)
    assert len(rated(st, backend, rng, 4, 0.2, 400)) == 1  # round 2, at NOW
    assert rated(st, backend, rng, 4, 0.2, 600, now=NOW + 1200) == []  # past the cooldown, round 2 still runs
    late = rated(st, backend, rng, 4, 0.2, 800, now=NOW + R.round_pending_s + 1)  # given up on round 2
    assert [x.dedupe_key for x in late] == [f"{first.dedupe_key}#round3"]


def test_back_to_normal_ends_the_episode_without_a_round() -> None:
    backend = ScipyBackend(0.01, 50)
    rng = np.random.default_rng(6)
    st, _ = episode_promoted(backend, rng)
    assert rated(st, backend, rng, 3, 0.12, 400) == []  # within the margin
    assert st.follow_up is None and st.follow_up_events == ["recovered"]


def test_a_follow_up_survives_a_restart() -> None:
    backend = ScipyBackend(0.01, 50)
    st, _ = episode_promoted(backend, np.random.default_rng(7))
    back = from_state(R, *to_state(st))
    assert back.follow_up == st.follow_up and back.baseline_negative == st.baseline_negative
