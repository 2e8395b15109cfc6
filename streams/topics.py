"""Every topic of the pipeline in one place: names, partitions, configs, cleanup policies.

Pure: the specs are built from settings; `omnijourney.local.admin.ensure_topics` creates them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from omnijourney.settings import Settings
from schemas.contracts import PERSONALIZATION_TOPIC, TOPIC_OF_RECORD
from schemas.topics import (
    CHANNEL_TOPICS,
    DEADLETTER_TOPIC,
    PRIVACY_RECEIPTS_TOPIC,
    PRIVACY_REQUESTS_TOPIC,
    VALID_TOPIC,
)

__all__ = [
    "CHANNEL_TOPICS",
    "COMPACTED_PUBLIC_TOPICS",
    "DEADLETTER_TOPIC",
    "PERSONALIZATION_TOPIC",
    "PUBLIC_TOPICS",
    "TOPIC_OF_RECORD",
    "VALID_TOPIC",
    "TopicSpec",
    "collector_topics",
    "customers_topic",
    "erasure_topics",
    "erasures_topic",
    "identifiers_topic",
    "pipeline_topics",
    "privacy_topics",
    "raw_topic_names",
    "stitching_topics",
]

_HOUR_MS: Final = 3_600_000
_DAY_MS: Final = 24 * _HOUR_MS


@dataclass(frozen=True, slots=True)
class TopicSpec:
    """One topic as the pipeline needs it."""

    name: str
    partitions: int
    config: Mapping[str, str] = field(default_factory=dict)
    purpose: str = ""


def _raw_config(settings: Settings) -> dict[str, str]:
    return {
        # The broker's clock stamps every record: the ingest stage takes received_at from it
        # (a producer's CreateTime would carry the very clock skew the edge corrects).
        "message.timestamp.type": "LogAppendTime",
        "cleanup.policy": "delete",
        "retention.ms": str(int(settings.topics.raw_retention_hours * _HOUR_MS)),
    }


def raw_topic_names() -> tuple[str, ...]:
    """The producer-facing topics (`touchpoints.<channel>`), one per channel."""
    return tuple(CHANNEL_TOPICS.values())


def collector_topics(settings: Settings) -> tuple[TopicSpec, ...]:
    """The topics the HTTP collector writes to."""
    partitions = settings.topics.partitions
    config = _raw_config(settings)
    return tuple(
        TopicSpec(name, partitions, config, f"raw {channel} touchpoints (producer input form)")
        for channel, name in CHANNEL_TOPICS.items()
    )


def pipeline_topics(settings: Settings) -> tuple[TopicSpec, ...]:
    """Every topic the ingest stage reads or writes."""
    partitions = settings.topics.partitions
    return (
        *collector_topics(settings),
        TopicSpec(
            VALID_TOPIC,
            partitions,
            {"cleanup.policy": "delete", "retention.ms": str(7 * _DAY_MS)},
            "validated touchpoints keyed by the strongest identifier",
        ),
        TopicSpec(
            DEADLETTER_TOPIC,
            partitions,
            {
                "cleanup.policy": "delete",
                "retention.ms": str(int(settings.topics.deadletter_retention_days * _DAY_MS)),
            },
            "refused messages with the reason and the (redacted) original bytes",
        ),
    )


def identifiers_topic(settings: Settings) -> str:
    """Internal: identity-protocol messages keyed by identifier (`kind:value`), per app id."""
    return f"{settings.worker.app_id}.identifiers"


def customers_topic(settings: Settings) -> str:
    """Internal: identity-protocol and journey messages keyed by customer id, per app id."""
    return f"{settings.worker.app_id}.customers"


def erasures_topic(settings: Settings) -> str:
    """Internal: the erasure coordinator's messages, keyed by erasure request id, per app id."""
    return f"{settings.worker.app_id}.erasures"


PUBLIC_TOPICS: Final = tuple(dict.fromkeys(TOPIC_OF_RECORD.values()))
COMPACTED_PUBLIC_TOPICS: Final = (
    "journeys.updates",
    "identity.links",
    "identity.merges",
    PERSONALIZATION_TOPIC,
)
"""Public topics whose state an erasure removes by tombstone (decision 0017): the journey
state, the identity graph and the personalization feed. The touchpoint and session streams
expire by retention only."""


def _public_config(settings: Settings, name: str) -> dict[str, str]:
    week = {"cleanup.policy": "delete", "retention.ms": str(7 * _DAY_MS)}
    if name not in COMPACTED_PUBLIC_TOPICS:
        return week
    topics = settings.topics
    return {
        # compact,delete: retention still bounds every record; compaction lets a customer's
        # tombstone remove its older records sooner, and readers see it as gone at once.
        "cleanup.policy": "compact,delete",
        "retention.ms": str(7 * _DAY_MS),
        # a consumer (the sink) less than this far behind still sees every record
        "min.compaction.lag.ms": str(int(topics.compaction_min_lag_hours * _HOUR_MS)),
        # an erased customer's records are physically gone at most this long after it
        "max.compaction.lag.ms": str(int(topics.compaction_max_lag_hours * _HOUR_MS)),
        # how long the tombstone itself stays for consumers that read the topic as a table
        "delete.retention.ms": str(_DAY_MS),
    }


def stitching_topics(settings: Settings) -> tuple[TopicSpec, ...]:
    """Every topic the stitching stages read or write (the valid input included)."""
    partitions = settings.topics.partitions
    week = {"cleanup.policy": "delete", "retention.ms": str(7 * _DAY_MS)}
    valid = next(spec for spec in pipeline_topics(settings) if spec.name == VALID_TOPIC)
    return (
        valid,
        TopicSpec(identifiers_topic(settings), partitions, week, "identity protocol, by id"),
        TopicSpec(
            customers_topic(settings), partitions, week, "identity and journeys, by customer"
        ),
        *(
            TopicSpec(
                name,
                partitions,
                _public_config(settings, name),
                "public output, keyed by customer id, versioned",
            )
            for name in PUBLIC_TOPICS
        ),
        TopicSpec(
            PERSONALIZATION_TOPIC,
            partitions,
            {
                # Compacted: the latest journey per consenting customer; a tombstone (consent
                # withdrawn, or merged) removes the customer's records within a day.
                "cleanup.policy": "compact",
                "max.compaction.lag.ms": str(_DAY_MS),
                "delete.retention.ms": str(_DAY_MS),
            },
            "journey updates of customers who allow personalization, keyed by customer id",
        ),
    )


def erasure_topics(settings: Settings) -> tuple[TopicSpec, ...]:
    """The privacy topics and the erasure coordinator's internal topic."""
    week = {"cleanup.policy": "delete", "retention.ms": str(7 * _DAY_MS)}
    return (
        *privacy_topics(settings),
        TopicSpec(
            erasures_topic(settings),
            settings.topics.partitions,
            week,
            "erasure coordination (answers of the stages, phases), by request id",
        ),
    )


def privacy_topics(settings: Settings) -> tuple[TopicSpec, ...]:
    """Erasure requests and their receipts, both compacted and keyed by request id.

    A request holds identifier hashes: once its receipt is out, the pipeline tombstones the
    request id and compaction removes the request from the log within a day. Receipts hold no
    personal data and are kept (the latest per request id).
    """
    partitions = settings.topics.partitions
    requests = {
        "cleanup.policy": "compact",
        "max.compaction.lag.ms": str(_DAY_MS),
        "delete.retention.ms": str(_DAY_MS),
    }
    return (
        TopicSpec(PRIVACY_REQUESTS_TOPIC, partitions, requests, "erasure requests, by request id"),
        TopicSpec(
            PRIVACY_RECEIPTS_TOPIC,
            partitions,
            {"cleanup.policy": "compact"},
            "erasure receipts (no personal data), by request id",
        ),
    )
