from driftloop.core.topics import ADAPTER_ROLLOUTS, ALL_TOPICS


def test_topic_names_unique_and_versioned() -> None:
    names = [t.name for t in ALL_TOPICS]
    assert len(names) == len(set(names))
    assert all(n.startswith("driftloop.") and n.endswith(".v1") for n in names)


def test_rollouts_topic_is_compacted() -> None:
    assert ADAPTER_ROLLOUTS.config["cleanup.policy"] == "compact"
