"""Rows of the ClickHouse tables, made from public records and dead letters (pure).

Column lists here and the DDL in `sinks/ddl/` describe the same tables (a test compares them
with the migrated schema); `ingested_at` is left to its DEFAULT.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

import orjson
from pydantic import ValidationError

from omnijourney.exceptions import InvalidRecord
from schemas.contracts import (
    AnonymousTouchpointRecord,
    EnrichedTouchpointRecord,
    IdentityLinkRecord,
    JourneyUpdateRecord,
    LinkRejectionRecord,
    MergeRecord,
    PublicRecord,
    SessionUpdateRecord,
    decode_record,
    record_from,
)
from schemas.deadletter import DeadLetter, SourcePosition, dead_letter
from schemas.pii import PiiHasher
from schemas.privacy import ErasureReceipt
from schemas.validation import field_errors, primary_reason

Row = tuple[Any, ...]
TableRow = tuple[str, Row]
"""A row and the table it goes to."""

TOUCHPOINTS: Final = "touchpoints"
SESSIONS: Final = "sessions"
JOURNEYS: Final = "journeys"
LINKS: Final = "identity_links"
MERGES: Final = "identity_merges"
REJECTIONS: Final = "identity_rejections"
ALIASES: Final = "customer_aliases"
DEAD_LETTERS: Final = "dead_letters"
RECEIPTS: Final = "privacy_receipts"
ANONYMOUS: Final = "anonymous_touchpoints"

COLUMNS: Final[dict[str, tuple[str, ...]]] = {
    TOUCHPOINTS: (
        "customer_id",
        "occurred_at",
        "event_id",
        "channel",
        "type",
        "received_at",
        "session_id",
        "journey_id",
        "position",
        "previous_channel",
        "late",
        "value",
        "currency",
        "identity_kinds",
        "identity_values",
        "consent_analytics",
        "consent_personalization",
        "consent_marketing",
        "properties",
        "version",
        "schema_version",
    ),
    SESSIONS: (
        "session_id",
        "customer_id",
        "journey_id",
        "channel",
        "started_at",
        "ended_at",
        "touch_count",
        "first_event_id",
        "last_event_id",
        "supersedes",
        "superseded_by",
        "version",
        "schema_version",
    ),
    JOURNEYS: (
        "journey_id",
        "customer_id",
        "status",
        "final",
        "started_at",
        "ended_at",
        "first_channel",
        "last_channel",
        "first_event_id",
        "last_event_id",
        "touch_count",
        "session_ids",
        "channel_path",
        "switch_count",
        "switch_from",
        "switch_to",
        "switch_at",
        "switch_event_ids",
        "conversion_event_id",
        "conversion_type",
        "conversion_channel",
        "converted_at",
        "conversion_value",
        "conversion_currency",
        "supersedes",
        "superseded_by",
        "version",
        "schema_version",
        "consent_analytics",
        "consent_personalization",
        "consent_marketing",
    ),
    LINKS: ("customer_id", "identifier_kind", "identifier_value", "event_id", "schema_version"),
    MERGES: (
        "alias_id",
        "survivor_id",
        "identifier_kind",
        "identifier_value",
        "rule",
        "event_id",
        "schema_version",
    ),
    REJECTIONS: (
        "customer_id",
        "identifier_kind",
        "identifier_value",
        "rule",
        "event_id",
        "other_customer_id",
        "schema_version",
    ),
    ALIASES: ("alias_id", "survivor_id", "direct", "event_id"),
    DEAD_LETTERS: (
        "received_at",
        "dead_letter_id",
        "stage",
        "reason",
        "error",
        "error_locs",
        "error_msgs",
        "error_reasons",
        "source_topic",
        "source_partition",
        "source_offset",
        "channel",
        "event_id",
        "original_b64",
        "original_size",
        "original_sha256",
        "original_truncated",
        "original_redacted",
        "version",
    ),
    ANONYMOUS: (
        "occurred_at",
        "event_id",
        "channel",
        "type",
        "received_at",
        "value",
        "currency",
        "consent_personalization",
        "consent_marketing",
        "properties",
        "schema_version",
    ),
    RECEIPTS: (
        "request_id",
        "started_at",
        "completed_at",
        "customer_ids_count",
        "stores",
        "store_keys_removed",
        "store_rows_removed",
        "store_completed_at",
        "schema_version",
    ),
}
"""Inserted columns of every table, in insert order."""


def _text(value: object) -> str:
    """A property value as text: strings as they are, other scalars as JSON."""
    return value if isinstance(value, str) else orjson.dumps(value).decode()


def _touchpoint(r: EnrichedTouchpointRecord) -> Row:
    return (
        r.customer_id,
        r.occurred_at,
        r.event_id,
        r.channel,
        r.type,
        r.received_at,
        r.session_id or "",
        r.journey_id or "",
        r.position or 0,
        r.previous_channel or "",
        r.late,
        r.value,
        r.currency or "",
        [i.kind for i in r.identities],
        [i.value for i in r.identities],
        r.consent.analytics,
        r.consent.personalization,
        r.consent.marketing,
        {key: _text(value) for key, value in r.properties.items()},
        r.version,
        r.schema_version,
    )


def _session(r: SessionUpdateRecord) -> Row:
    return (
        r.session_id,
        r.customer_id,
        r.journey_id,
        r.channel,
        r.started_at,
        r.ended_at,
        r.touch_count,
        r.first_event_id,
        r.last_event_id,
        list(r.supersedes),
        r.superseded_by or "",
        r.version,
        r.schema_version,
    )


def _journey(r: JourneyUpdateRecord) -> Row:
    return (
        r.journey_id,
        r.customer_id,
        r.status,
        r.final,
        r.started_at,
        r.ended_at,
        r.first_channel,
        r.last_channel,
        r.first_event_id,
        r.last_event_id,
        r.touch_count,
        list(r.session_ids),
        list(r.channel_path),
        r.switch_count,
        [s.from_channel for s in r.switches],
        [s.to_channel for s in r.switches],
        [s.at for s in r.switches],
        [s.event_id for s in r.switches],
        r.conversion_event_id or "",
        r.conversion_type or "",
        r.conversion_channel or "",
        r.converted_at,
        r.conversion_value,
        r.conversion_currency or "",
        list(r.supersedes),
        r.superseded_by or "",
        r.version,
        r.schema_version,
        r.consent.analytics,
        r.consent.personalization,
        r.consent.marketing,
    )


def _anonymous(r: AnonymousTouchpointRecord) -> Row:
    return (
        r.occurred_at,
        r.event_id,
        r.channel,
        r.type,
        r.received_at,
        r.value,
        r.currency or "",
        r.consent.personalization,
        r.consent.marketing,
        {key: _text(value) for key, value in r.properties.items()},
        r.schema_version,
    )


def rows_of(record: PublicRecord) -> list[TableRow]:
    """The rows one record becomes (a merge is also an alias of its survivor)."""
    if isinstance(record, EnrichedTouchpointRecord):
        return [(TOUCHPOINTS, _touchpoint(record))]
    if isinstance(record, AnonymousTouchpointRecord):
        return [(ANONYMOUS, _anonymous(record))]
    if isinstance(record, SessionUpdateRecord):
        return [(SESSIONS, _session(record))]
    if isinstance(record, JourneyUpdateRecord):
        return [(JOURNEYS, _journey(record))]
    if isinstance(record, IdentityLinkRecord):
        row: Row = (
            record.customer_id,
            record.identifier_kind,
            record.identifier_value,
            record.event_id,
            record.schema_version,
        )
        return [(LINKS, row)]
    if isinstance(record, MergeRecord):
        merge = (
            record.alias_id,
            record.survivor_id,
            record.identifier_kind,
            record.identifier_value,
            record.rule,
            record.event_id,
            record.schema_version,
        )
        alias = (record.alias_id, record.survivor_id, True, record.event_id)
        return [(MERGES, merge), (ALIASES, alias)]
    if isinstance(record, LinkRejectionRecord):
        row = (
            record.customer_id,
            record.identifier_kind,
            record.identifier_value,
            record.rule,
            record.event_id,
            record.other_customer_id or "",
            record.schema_version,
        )
        return [(REJECTIONS, row)]
    raise TypeError(f"not a public record: {type(record).__name__}")


def dead_letter_row(letter: DeadLetter) -> TableRow:
    """The dead_letters row of a dead letter."""
    source = letter.source
    row = (
        letter.received_at,
        letter.dead_letter_id,
        letter.stage,
        letter.reason,
        letter.error,
        [e.loc for e in letter.errors],
        [e.msg for e in letter.errors],
        [e.reason for e in letter.errors],
        source.topic if source else "",
        source.partition if source else -1,
        source.offset if source else -1,
        letter.channel or "",
        letter.event_id or "",
        letter.original_b64,
        letter.original_size,
        letter.original_sha256,
        letter.original_truncated,
        letter.original_redacted,
        letter.version,
    )
    return (DEAD_LETTERS, row)


def receipt_row(receipt: ErasureReceipt) -> TableRow:
    """The privacy_receipts row of an erasure receipt (stores as parallel arrays)."""
    row = (
        receipt.request_id,
        receipt.started_at,
        receipt.completed_at,
        receipt.customer_ids_count,
        [s.store for s in receipt.stores],
        [s.keys_removed for s in receipt.stores],
        [s.rows_removed for s in receipt.stores],
        [s.completed_at for s in receipt.stores],
        receipt.schema_version,
    )
    return (RECEIPTS, row)


def deduplication_token(topic: str, partition: int, first: int, last: int, table: str) -> str:
    """The insert_deduplication_token of a batch's rows of one table.

    A batch is the records [first, last] of one partition, and a replay after a crash rebuilds
    exactly that range, so the retried insert carries the same token and ClickHouse drops it.
    """
    return f"omnijourney-sink:{topic}:{partition}:{first}-{last}:{table}"


STAGE: Final = "sink"
"""The stage named in dead letters of records the sink cannot read."""


def message_rows(
    topic: str,
    partition: int,
    offset: int,
    value: bytes | None,
    *,
    received_at: datetime,
    hasher: PiiHasher,
) -> tuple[list[TableRow], bool]:
    """The rows of one Kafka message, and whether it was refused (then it is a dead letter).

    Never raises for bad input: a record that breaks its contract becomes a dead_letters row
    with the reason and the field, so one bad record never blocks its partition. A tombstone
    (no value: an erasure deleting a key of a compacted topic) has no rows.
    """
    if value is None:
        return [], False
    raw = value
    try:
        return _decode(raw), False
    except Exception as exc:  # even a bug on one record must not stall its partition
        source = SourcePosition(topic=topic, partition=partition, offset=offset)
        letter = dead_letter(
            raw, exc, stage=STAGE, received_at=received_at, hasher=hasher, source=source
        )
        return [dead_letter_row(letter)], True


def _decode(raw: bytes) -> list[TableRow]:
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return rows_of(decode_record(raw))  # raises the contract's not_json error
    if isinstance(data, dict) and "record_type" not in data and "dead_letter_id" in data:
        # a dead letter of an earlier stage (touchpoints.deadletter): routed by content, so
        # topic names stay a deployment choice
        try:
            letter = DeadLetter.model_validate(data)
        except ValidationError as exc:
            errors = field_errors(exc)
            raise InvalidRecord(primary_reason(errors), errors) from None
        return [dead_letter_row(letter)]
    return rows_of(record_from(data))
