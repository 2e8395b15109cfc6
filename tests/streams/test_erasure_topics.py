"""The topics of erasure: compacted where a tombstone must erase, delete-policy elsewhere."""

from __future__ import annotations

from omnijourney.settings import load_settings
from schemas.topics import PRIVACY_REQUESTS_TOPIC
from streams.topics import COMPACTED_PUBLIC_TOPICS, erasure_topics, stitching_topics


def test_the_topics_of_erasure_are_created_compacted_where_tombstones_erase() -> None:
    settings = load_settings()
    specs = {spec.name: spec for spec in (*stitching_topics(settings), *erasure_topics(settings))}
    for topic in COMPACTED_PUBLIC_TOPICS:
        assert specs[topic].config["cleanup.policy"] == "compact,delete"
        assert int(specs[topic].config["max.compaction.lag.ms"]) >= int(
            specs[topic].config["min.compaction.lag.ms"]
        )
    assert specs["journeys.touchpoints"].config["cleanup.policy"] == "delete"
    assert specs[PRIVACY_REQUESTS_TOPIC].config["cleanup.policy"] == "compact"
