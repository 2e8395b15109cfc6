"""Inserts of the sink's batches into ClickHouse with clickhouse-connect (blocking; a thread).

Every insert carries `insert_deduplication_token`, so repeating a batch (a retry after an
error, or a replay after a crash) never doubles a row. After a batch with merges, aliases are
flattened: the pairs missing from `customer_aliases` are read from the table itself and inserted.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Final

from clickhouse_connect.driver.client import Client

from omnijourney.exceptions import MigrationError
from omnijourney.settings import Settings
from sinks import rows
from sinks.batches import Batch
from sinks.clickhouse import client

log = logging.getLogger(__name__)

_FLATTEN_PASSES: Final = 8
"""A chain needs one pass per link added at once; more than a few means something is odd."""

MISSING_ALIASES: Final = """
WITH candidates AS
(
    SELECT alias_id, survivor_id, event_id
    FROM customer_aliases
    WHERE alias_id IN {ids:Array(String)} OR survivor_id IN {ids:Array(String)}
)
SELECT DISTINCT a.alias_id, b.survivor_id, false, a.event_id
FROM candidates AS a
INNER JOIN
(
    SELECT alias_id, survivor_id
    FROM customer_aliases
    WHERE alias_id IN (SELECT survivor_id FROM candidates)
) AS b ON a.survivor_id = b.alias_id
WHERE (a.alias_id, b.survivor_id) NOT IN
(
    SELECT alias_id, survivor_id
    FROM customer_aliases
    WHERE alias_id IN (SELECT alias_id FROM candidates)
)
ORDER BY a.alias_id, b.survivor_id, a.event_id
"""
"""Aliases to re-point, among the ids of a batch's merges: an alias whose survivor is itself an
alias gets that survivor's survivor.

Covers both directions: an older alias X -> A gets X -> Z when A -> Z arrives, and a new
A -> Z gets A -> Y when Z -> Y is already known. Only missing pairs come back, so running it
again (a retry, a replay, another sink) adds nothing.
"""

IDS_BUDGET: Final = 96 * 1024
"""Most bytes of ids (with their quotes and commas) sent in one query.

A batch of merges names thousands of ids. clickhouse-connect sends a parameter that long in a
multipart form body instead of the URL (request lines are limited: 8 KiB by the embedded
server and by common proxies), and ClickHouse limits a form field to
http_max_field_value_size (128 KiB by default): chunks of this size fit everywhere.
"""


CLUSTER_INSERT_SETTINGS: Final[dict[str, int | str]] = {
    "distributed_foreground_insert": 1,
    "load_balancing": "in_order",
}
"""Settings of the sink's statements on a cluster (setting clickhouse.cluster).

An insert into a Distributed table returns once every shard has its rows, not when they sit in
the local send queue: only then may the sink commit the batch's Kafka offsets. `in_order` sends
the inserts and the alias flattening that reads them back to the same (first healthy) replica
of each shard, so the flattening sees what the batch just wrote.
"""


def id_chunks(ids: Sequence[str], budget: int) -> list[list[str]]:
    """The ids in order, cut into lists of at most `budget` bytes as an array parameter."""
    chunks: list[list[str]] = []
    size = budget
    for one in ids:
        cost = len(one.encode()) + 3  # quotes and a comma
        if size + cost > budget:
            chunks.append([])
            size = 0
        chunks[-1].append(one)
        size += cost
    return chunks


def _written(summary: Any) -> int:
    counts = getattr(summary, "summary", None) or {}
    return int(counts.get("written_rows", 0) or 0)


class Writer:
    """The sink's connection to ClickHouse (re-opened after a failure)."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._client: Client | None = None
        self._types: dict[str, list[str]] = {}
        """Column types by table, read once per connection (saves a DESCRIBE per insert)."""
        self._cluster_settings: dict[str, int | str] = (
            CLUSTER_INSERT_SETTINGS if settings.clickhouse.cluster else {}
        )

    def _connect(self) -> Client:
        if self._client is None:
            # No HTTP session: inserts are independent and a session could be locked by a
            # request of a previous attempt that the server is still finishing.
            self._client = client(
                self._settings,
                autogenerate_session_id=False,
                connect_timeout=5,
                send_receive_timeout=60,
            )
        return self._client

    def write(self, batch: Batch) -> int:
        """Insert every row of the batch; the number of rows written (duplicates count 0)."""
        try:
            conn = self._connect()
            written = 0
            for table in sorted(batch.rows):
                summary = conn.insert(
                    table,
                    batch.rows[table],
                    column_names=rows.COLUMNS[table],
                    column_type_names=self._column_types(conn, table),
                    settings={
                        "insert_deduplicate": 1,
                        "insert_deduplication_token": batch.token(table),
                        **self._cluster_settings,
                    },
                )
                written += _written(summary)
            ids = batch.alias_ids()
            if ids:
                self.flatten_aliases(conn, ids)
            return written
        except Exception:
            self.close()  # a fresh client next time: the server may have restarted
            raise

    def _column_types(self, conn: Client, table: str) -> list[str]:
        if table not in self._types:
            answer = conn.query(
                "SELECT name, type FROM system.columns "
                "WHERE database = currentDatabase() AND table = {table:String}",
                parameters={"table": table},
            )
            found = {str(name): str(kind) for name, kind in answer.result_rows}
            missing = [name for name in rows.COLUMNS[table] if name not in found]
            if missing:
                raise MigrationError(
                    f"table {table} lacks columns {', '.join(missing)}: run "
                    "`omnijourney clickhouse migrate`"
                )
            self._types[table] = [found[name] for name in rows.COLUMNS[table]]
        return self._types[table]

    def flatten_aliases(self, conn: Client, ids: list[str]) -> None:
        """Re-point aliases through the aliases of `ids` until the chains are flat."""
        chunks = id_chunks(ids, IDS_BUDGET)
        for _ in range(_FLATTEN_PASSES):
            added = 0
            for chunk in chunks:
                missing = conn.query(
                    MISSING_ALIASES, parameters={"ids": chunk}, settings=self._cluster_settings
                ).result_rows
                if missing:
                    self._insert_aliases(conn, missing)
                    added += len(missing)
            if added == 0:
                return
        log.warning(
            "alias chains of %d ids still not flat after %d passes", len(ids), _FLATTEN_PASSES
        )

    def _insert_aliases(self, conn: Client, missing: Sequence[Sequence[Any]]) -> None:
        # No deduplication token: the rows are what is missing right now, so a retry computes
        # them again, and a token could drop the same rows re-derived after an erasure.
        conn.insert(
            rows.ALIASES,
            missing,
            column_names=rows.COLUMNS[rows.ALIASES],
            column_type_names=self._column_types(conn, rows.ALIASES),
            settings={"insert_deduplicate": 0, **self._cluster_settings},
        )

    def ping(self) -> bool:
        """True when ClickHouse answers."""
        try:
            return bool(self._connect().ping())
        except Exception:
            self.close()
            return False

    def close(self) -> None:
        """Drop the connection."""
        self._types.clear()
        if self._client is not None:
            try:
                self._client.close()
            finally:
                self._client = None
