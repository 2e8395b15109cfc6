"""Kafka topic names of touchpoints, in one place."""

from __future__ import annotations

from typing import Final, NamedTuple

from schemas.channel import CHANNELS, Channel

TOPIC_PREFIX: Final = "touchpoints"
DEADLETTER_TOPIC: Final = "touchpoints.deadletter"
VALID_TOPIC: Final = "touchpoints.valid"
"""Validated touchpoints (the ingest stage's output, the identity stage's input)."""
PRIVACY_REQUESTS_TOPIC: Final = "privacy.requests"
"""Erasure requests (`schemas.privacy.ErasureRequest`), keyed by request id."""
PRIVACY_RECEIPTS_TOPIC: Final = "privacy.receipts"
"""Receipts of completed erasures (`schemas.privacy.ErasureReceipt`), keyed by request id."""


def topic_for(channel: Channel) -> str:
    """The raw topic a channel's producers write to (`touchpoints.<channel>`)."""
    return f"{TOPIC_PREFIX}.{channel}"


CHANNEL_TOPICS: Final[dict[Channel, str]] = {channel: topic_for(channel) for channel in CHANNELS}
"""Every channel's raw topic."""


class Record(NamedTuple):
    """What to produce: topic, key bytes, value bytes."""

    topic: str
    key: bytes
    value: bytes
