"""What the personalization topic gets from the core's records (pure; decision 0016).

`journeys.personalization` is journeys.updates for consenting customers only, compacted and
keyed by customer id: a journey update is copied there while the customer's latest consent
allows personalization (the update carries that consent), and the customer's key gets a
tombstone when the consent is withdrawn or the customer becomes an alias of another (its
journeys are published under the survivor from then on), so compaction forgets it.
"""

from __future__ import annotations

from typing import Final

from schemas.contracts import PERSONALIZATION_TOPIC
from streams.core.records import ConsentChange, JourneyUpdate, Merge, Record

Output = tuple[str, bytes, bytes | None]
"""(topic, key, value); a value of None is a tombstone."""

_NOTHING: Final[list[Output]] = []


def personalization_outputs(record: Record, value: bytes | None = None) -> list[Output]:
    """The personalization topic's messages for one record (`value`: its encoded form)."""
    kind = type(record)
    if kind is JourneyUpdate:
        assert isinstance(record, JourneyUpdate)
        if record.consent.personalization and record.superseded_by is None and value is not None:
            return [(PERSONALIZATION_TOPIC, record.customer_id.encode(), value)]
        return _NOTHING
    if kind is ConsentChange:
        assert isinstance(record, ConsentChange)
        if record.withdraws_personalization:
            return [(PERSONALIZATION_TOPIC, record.customer_id.encode(), None)]
        return _NOTHING
    if kind is Merge:
        assert isinstance(record, Merge)
        return [(PERSONALIZATION_TOPIC, record.alias_id.encode(), None)]
    return _NOTHING
