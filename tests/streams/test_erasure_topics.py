"""The topics of erasure: compacted where a tombstone must erase, delete-policy elsewhere."""

from __future__ import annotations

from omnijourney.settings import load_settings
from schemas.topics import PRIVACY_REQUESTS_TOPIC
from streams.topics import COMPACTED_PUBLIC_TOPICS, erasure_topics, stitching_topics


def test_the_topics_of_erasure_are_created_compacted_where_tombstones_erase() -> None:
    settings = load_settings()
    specs = {spec.name: spec for spec in (*stitching_topics(settings), *erasure_topics(settings))}
    for topic in COMPACTED_PUBLIC_TOPICS:
        config = specs[topic].config
        assert "compact" in config["cleanup.policy"].split(",")
        assert int(config["max.compaction.lag.ms"]) >= int(config.get("min.compaction.lag.ms", 0))
    assert specs["journeys.updates"].config["cleanup.policy"] == "compact,delete"
    assert specs["journeys.personalization"].config["cleanup.policy"] == "compact"
    assert specs["journeys.touchpoints"].config["cleanup.policy"] == "delete"
    assert specs[PRIVACY_REQUESTS_TOPIC].config["cleanup.policy"] == "compact"
