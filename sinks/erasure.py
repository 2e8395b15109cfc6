"""Erasure in ClickHouse: delete every row of a customer from every table the sink writes.

Given the customer ids of one person (the customer and its aliases) and their identifier keys
(`kind:value`, email and phone as hashes), `erase_customer`:

1. completes the sets from ClickHouse itself: every id joined to them by `customer_aliases`
   (in both directions, to a fixpoint), every identifier `identity_links` links to those ids,
   and the event ids of the touchpoints that will go (dead letters are found by them);
2. deletes, table by table, every row that carries one of those ids or identifiers with
   `ALTER TABLE ... DELETE` and `mutations_sync = 2`: the parts holding them are rewritten
   without them before the call returns (on every replica of a cluster), unlike a lightweight
   DELETE, which only masks rows until a later merge;
3. counts again and raises ErasureIncomplete if anything is left (a row the sink inserted
   meanwhile): the caller runs it again.

A row of another customer that carries the person's identifier or id (a link rejection naming
them, a touch on a shared device linked to them) is personal data about them and goes too.
Dead letters go by event id and when their (redacted) original bytes hold one of the ids or
identifier values as a JSON string. Tables are erased in an order that keeps a re-run after an
interruption complete: dead letters first (found through touchpoints), aliases last (they
complete the ids). Re-running an erasure that finished removes nothing and succeeds.

Blocking (clickhouse-connect); run it in a thread from asyncio code.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import orjson
from clickhouse_connect.driver.client import Client

from omnijourney.exceptions import ErasureIncomplete
from omnijourney.settings import Settings
from schemas.privacy import ErasureReceipt, StoreReceipt
from sinks import rows
from sinks.clickhouse import client
from sinks.cluster import Cluster, local_name
from sinks.migrations import cluster_of
from sinks.writer import CLUSTER_INSERT_SETTINGS

STORE_PREFIX: Final = "clickhouse."
"""Receipts name a ClickHouse table as store `clickhouse.<table>`."""

_KEY: Final = "concat(identifier_kind, ':', identifier_value)"
_EXPANSION_ROUNDS: Final = 16

CONDITIONS: Final[dict[str, str]] = {
    rows.DEAD_LETTERS: (
        "event_id IN {events:Array(String)} OR arrayExists("
        "needle -> position(tryBase64Decode(original_b64), needle) > 0, {needles:Array(String)})"
    ),
    rows.TOUCHPOINTS: (
        "customer_id IN {ids:Array(String)} OR hasAny(arrayMap((k, v) -> concat(k, ':', v), "
        "identity_kinds, identity_values), {keys:Array(String)})"
    ),
    rows.SESSIONS: "customer_id IN {ids:Array(String)}",
    rows.JOURNEYS: "customer_id IN {ids:Array(String)}",
    rows.REJECTIONS: (
        "customer_id IN {ids:Array(String)} OR other_customer_id IN {ids:Array(String)} "
        f"OR {_KEY} IN {{keys:Array(String)}}"
    ),
    rows.MERGES: (
        "alias_id IN {ids:Array(String)} OR survivor_id IN {ids:Array(String)} "
        f"OR {_KEY} IN {{keys:Array(String)}}"
    ),
    rows.LINKS: f"customer_id IN {{ids:Array(String)}} OR {_KEY} IN {{keys:Array(String)}}",
    rows.ALIASES: "alias_id IN {ids:Array(String)} OR survivor_id IN {ids:Array(String)}",
}
"""Which rows of each table carry the person, in the order the tables are erased."""

ERASED_TABLES: Final[tuple[str, ...]] = tuple(CONDITIONS)
"""Every table the sink writes (privacy_receipts holds no personal data and stays)."""


@dataclass(frozen=True)
class ErasureResult:
    """What the erasure removed: rows per table and how many ids and identifiers it covered."""

    rows_removed: Mapping[str, int]
    customer_ids_count: int
    identifiers_count: int

    def stores(self, completed_at: datetime) -> list[StoreReceipt]:
        """The receipt entries of the ClickHouse tables (`clickhouse.<table>`), in order."""
        return [
            StoreReceipt(store=STORE_PREFIX + table, rows_removed=count, completed_at=completed_at)
            for table, count in self.rows_removed.items()
        ]


@dataclass(frozen=True)
class _Targets:
    ids: list[str]
    keys: list[str]
    events: list[str]

    def parameters(self) -> dict[str, list[str]]:
        # JSON-quoted values match whole strings inside a dead letter's original JSON only
        values = [key.partition(":")[2] for key in self.keys] + self.ids
        needles = sorted({orjson.dumps(value).decode() for value in values})
        return {"ids": self.ids, "keys": self.keys, "events": self.events, "needles": needles}


def _keys(identifier_keys: Iterable[str]) -> set[str]:
    keys = set()
    for key in identifier_keys:
        kind, sep, value = key.partition(":")
        if not sep or not kind or not value:
            raise ValueError("identifier keys are 'kind:value' (e.g. 'email_hash:<64 hex>')")
        keys.add(key)
    return keys


def _column(conn: Client, sql: str, **parameters: Any) -> set[str]:
    return {str(row[0]) for row in conn.query(sql, parameters=parameters).result_rows}


def _expand(conn: Client, customer_ids: Iterable[str], identifier_keys: Iterable[str]) -> _Targets:
    """The ids, identifier keys and event ids to erase, completed from ClickHouse."""
    ids = {i for i in customer_ids if i}
    keys = _keys(identifier_keys)
    if not ids and not keys:
        raise ValueError("nothing to erase: no customer id and no identifier key")
    for _ in range(_EXPANSION_ROUNDS):
        found = _column(
            conn,
            "SELECT arrayJoin([alias_id, survivor_id]) FROM customer_aliases "
            "WHERE alias_id IN {ids:Array(String)} OR survivor_id IN {ids:Array(String)}",
            ids=sorted(ids),
        )
        if found <= ids:
            break
        ids |= found
    keys |= _column(
        conn,
        f"SELECT {_KEY} FROM identity_links WHERE customer_id IN {{ids:Array(String)}}",
        ids=sorted(ids),
    )
    events = _column(
        conn,
        f"SELECT DISTINCT event_id FROM touchpoints WHERE {CONDITIONS[rows.TOUCHPOINTS]}",
        ids=sorted(ids),
        keys=sorted(keys),
    )
    return _Targets(sorted(ids), sorted(keys), sorted(events))


def _count(conn: Client, table: str, parameters: dict[str, list[str]]) -> int:
    sql = f"SELECT count() FROM {table} WHERE {CONDITIONS[table]}"
    return int(str(conn.command(sql, parameters=_used(table, parameters))))


def _used(table: str, parameters: dict[str, list[str]]) -> dict[str, list[str]]:
    return {
        name: value for name, value in parameters.items() if "{" + name + ":" in CONDITIONS[table]
    }


def delete_statement(table: str, cluster: Cluster | None = None) -> str:
    """The ALTER TABLE ... DELETE of a table's rows of the person (parameters bound later).

    On a cluster it goes to the replicated local tables on every shard.
    """
    target = table if cluster is None else f"{local_name(table)} {cluster.on}"
    return f"ALTER TABLE {target} DELETE WHERE {CONDITIONS[table]}"


def erase_customer(
    conn: Client,
    customer_ids: Iterable[str],
    identifier_keys: Iterable[str],
    *,
    cluster: Cluster | None = None,
) -> ErasureResult:
    """Delete every row carrying the customer ids or identifier keys; rows removed per table.

    ErasureIncomplete when rows were still found afterwards (inserted meanwhile): run it again.
    """
    targets = _expand(conn, customer_ids, identifier_keys)
    parameters = targets.parameters()
    removed: dict[str, int] = {}
    for table in ERASED_TABLES:
        found = _count(conn, table, parameters)
        if found:
            conn.command(
                delete_statement(table, cluster),
                parameters=_used(table, parameters),
                settings={"mutations_sync": 2},
            )
            left = _count(conn, table, parameters)
            if left:
                raise ErasureIncomplete(
                    f"{left} rows of the erased customer are still in {table}: run the erasure "
                    "again (rows were probably inserted while it ran)"
                )
        removed[table] = found
    return ErasureResult(removed, len(targets.ids), len(targets.keys))


def store_receipt(conn: Client, receipt: ErasureReceipt, *, cluster: Cluster | None = None) -> None:
    """Keep a receipt in privacy_receipts (storing one twice keeps one row)."""
    table, row = rows.receipt_row(receipt)
    conn.insert(
        table,
        [row],
        column_names=rows.COLUMNS[table],
        settings={
            "insert_deduplicate": 1,
            "insert_deduplication_token": f"omnijourney-privacy-receipt:{receipt.request_id}",
            **(CLUSTER_INSERT_SETTINGS if cluster is not None else {}),
        },
    )


def _utc(moment: datetime) -> datetime:
    # the column is DateTime64(6, 'UTC'); a client that drops the zone still means UTC
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def find_receipt(conn: Client, request_id: str) -> ErasureReceipt | None:
    """The stored receipt of a request, or None."""
    columns = rows.COLUMNS[rows.RECEIPTS]
    result = conn.query(
        f"SELECT {', '.join(columns)} FROM {rows.RECEIPTS} FINAL "
        "WHERE request_id = {id:String} LIMIT 1",
        parameters={"id": request_id},
    )
    if not result.result_rows:
        return None
    row = dict(zip(columns, result.result_rows[0], strict=True))
    stores = [
        StoreReceipt(store=store, keys_removed=keys, rows_removed=count, completed_at=_utc(done))
        for store, keys, count, done in zip(
            row["stores"],
            row["store_keys_removed"],
            row["store_rows_removed"],
            row["store_completed_at"],
            strict=True,
        )
    ]
    return ErasureReceipt(
        request_id=row["request_id"],
        stores=tuple(stores),
        customer_ids_count=row["customer_ids_count"],
        started_at=_utc(row["started_at"]),
        completed_at=_utc(row["completed_at"]),
        schema_version=row["schema_version"],
    )


def erase(
    settings: Settings, customer_ids: Iterable[str], identifier_keys: Iterable[str]
) -> ErasureResult:
    """`erase_customer` on the configured ClickHouse (and cluster, if one is set)."""
    conn = client(settings, autogenerate_session_id=False, send_receive_timeout=600)
    try:
        return erase_customer(conn, customer_ids, identifier_keys, cluster=cluster_of(settings))
    finally:
        conn.close()


def save_receipt(settings: Settings, receipt: ErasureReceipt) -> None:
    """`store_receipt` on the configured ClickHouse."""
    conn = client(settings, autogenerate_session_id=False)
    try:
        store_receipt(conn, receipt, cluster=cluster_of(settings))
    finally:
        conn.close()
