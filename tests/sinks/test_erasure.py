"""Erasure in the real embedded ClickHouse: one customer's rows go from every table, no other."""

from __future__ import annotations

import base64
import hashlib
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from clickhouse_connect.driver.client import Client

from omnijourney.settings import RetentionSettings, Settings
from schemas.contracts import record_from
from schemas.privacy import ErasureReceipt, StoreReceipt, decode_receipt, receipt_record
from sinks import rows
from sinks.batches import Batch
from sinks.clickhouse import client
from sinks.cluster import Cluster
from sinks.erasure import (
    ERASED_TABLES,
    delete_statement,
    erase_customer,
    find_receipt,
    store_receipt,
)
from sinks.migrations import migrate
from sinks.writer import Writer
from tests.schemas.support import HASHER
from tests.sinks import story as s

pytestmark = pytest.mark.clickhouse

ANN_PHONE_HASH = hashlib.sha256(b"synthetic-ann-phone").hexdigest()
ANN_IDS = {s.ANN, s.COOKIE, s.DEVICE}
ANN_KEYS = {
    "anonymous_id:ck-1",
    "device_id:dv-1",
    "customer_id:ann",
    f"email_hash:{s.ANN_EMAIL_HASH}",
    f"phone_hash:{ANN_PHONE_HASH}",
}
RECEIVED = datetime(2026, 3, 9, 12, 0, tzinfo=UTC)


def _records() -> list[dict[str, Any]]:
    """The scripted story, Ann also known by a phone hash, Bob once on Ann's shared tablet."""
    shared_tablet = s.touch(
        "b5",
        "app",
        "page_view",
        s.at(3, 16),
        [("customer_id", "bob"), ("device_id", "dv-1")],
        customer=s.BOB,
        journey="JB2",
        position=2,
        previous="callcenter",
        version=5,
    )
    return [*s.story(), s.link(s.ANN, "phone_hash", ANN_PHONE_HASH, "a5"), shared_tablet]


def _dead_letters() -> list[bytes]:
    """Messages the sink refuses: two of Ann's, the rest of nobody in particular."""
    broken_ann = s.touch(
        "a6",
        "web",
        "page_view",
        s.at(4, 18),
        [("email_hash", s.ANN_EMAIL_HASH)],
        customer=s.ANN,
        journey="JA",
        position=6,
        previous="pos",
        version=14,
    )
    del broken_ann["version"]
    only_event = {"record_type": "enriched_touchpoint", "schema_version": 1, "event_id": "a2"}
    others = [value for _, value in s.broken()]
    return [orjson.dumps(broken_ann), orjson.dumps(only_event), *others]


def _write(settings: Settings) -> None:
    """Everything through the sink's own row making and writer (dedup tokens, alias flattening)."""
    batch = Batch("test", 0, 0.0)
    offset = 0
    for record in _records():
        batch.add(offset, rows.rows_of(record_from(record)), 1)
        offset += 1
    for value in [*_dead_letters(), s.ingest_dead_letter()]:
        made, _ = rows.message_rows(
            "journeys.touchpoints", 0, offset, value, received_at=RECEIVED, hasher=HASHER
        )
        batch.add(offset, made, 1)
        offset += 1
    writer = Writer(settings)
    try:
        assert writer.write(batch) > 0
    finally:
        writer.close()


@pytest.fixture
def loaded(clickhouse_settings: Settings) -> Iterator[tuple[Settings, Client]]:
    """A fresh database with the story in it, fully merged (so only the erasure changes rows)."""
    name = f"er_{uuid.uuid4().hex[:10]}"
    forever = RetentionSettings(  # the story is in March 2026: no TTL may drop it meanwhile
        touchpoints_days=0, sessions_days=0, journeys_days=0, dead_letters_days=0
    )
    settings = clickhouse_settings.model_copy(
        update={
            "clickhouse": clickhouse_settings.clickhouse.model_copy(update={"database": name}),
            "sink": clickhouse_settings.sink.model_copy(update={"retention": forever}),
        }
    )
    migrate(settings)
    _write(settings)
    conn = client(settings, autogenerate_session_id=False)
    for table in ERASED_TABLES:
        conn.command(f"OPTIMIZE TABLE {table} FINAL")
    try:
        yield settings, conn
    finally:
        conn.command(f"DROP DATABASE IF EXISTS `{name}`")
        conn.close()


def _snapshot(conn: Client) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table the sink writes, in a stable order."""
    out = {}
    for table in ERASED_TABLES:
        columns = ", ".join(c for c in rows.COLUMNS[table])
        result = conn.query(f"SELECT {columns} FROM {table} ORDER BY {columns}")
        out[table] = [tuple(row) for row in result.result_rows]
    return out


def _strings(value: Any) -> Iterator[str]:
    """Every string inside a column value (arrays, maps, a dead letter's original JSON)."""
    if isinstance(value, str):
        yield value
        try:
            decoded = orjson.loads(base64.b64decode(value, validate=True))
        except (ValueError, orjson.JSONDecodeError):
            return
        yield from _strings(decoded)
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(key)
            yield from _strings(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _strings(item)


def _traces(before: dict[str, list[tuple[Any, ...]]]) -> set[str]:
    """Ann's ids, identifier values, and the events of every touch that carries one of them."""
    traces = ANN_IDS | {key.partition(":")[2] for key in ANN_KEYS}
    event = rows.COLUMNS[rows.TOUCHPOINTS].index("event_id")
    for row in before[rows.TOUCHPOINTS]:
        if traces & set(_strings(row)):
            traces.add(row[event])
    return traces


def _carries(row: tuple[Any, ...], traces: set[str]) -> bool:
    return bool(traces & set(_strings(row)))


def test_erasing_ann_removes_every_row_that_carries_her_and_nothing_else(
    loaded: tuple[Settings, Client],
) -> None:
    _, conn = loaded
    before = _snapshot(conn)
    traces = _traces(before)
    assert all(any(_carries(r, traces) for r in before[t]) for t in ERASED_TABLES)
    assert any(not _carries(r, traces) for t in ERASED_TABLES for r in before[t])

    result = erase_customer(conn, ANN_IDS, ANN_KEYS)

    after = _snapshot(conn)
    for table in ERASED_TABLES:
        assert not any(_carries(row, traces) for row in after[table]), table
        # every other row is still there, unchanged: other customers are untouched
        assert after[table] == [r for r in before[table] if not _carries(r, traces)], table
        assert result.rows_removed[table] == len(before[table]) - len(after[table]), table
    assert result.customer_ids_count == 3
    assert result.identifiers_count == len(ANN_KEYS)
    # Cid's refused claim on Ann's customer id names her: it goes; Cid's own rows stay
    assert not any(s.ANN in row for row in after[rows.REJECTIONS])
    assert any(s.CID in row for row in after[rows.TOUCHPOINTS])
    # Bob's touch on the tablet linked to Ann carries her device id: it goes too
    assert {row[2] for row in after[rows.TOUCHPOINTS]} >= {"b1", "b2", "b3", "b4"}
    assert "b5" not in {row[2] for row in after[rows.TOUCHPOINTS]}

    again = erase_customer(conn, ANN_IDS, ANN_KEYS)  # idempotent: a retry finds nothing
    assert set(again.rows_removed.values()) == {0}
    assert _snapshot(conn) == after


def test_one_id_is_enough_aliases_and_linked_identifiers_come_from_clickhouse(
    loaded: tuple[Settings, Client],
) -> None:
    _, conn = loaded
    before = _snapshot(conn)
    traces = _traces(before)
    result = erase_customer(conn, [s.DEVICE], [])  # the oldest alias of Ann, nothing else
    after = _snapshot(conn)
    for table in ERASED_TABLES:
        assert after[table] == [r for r in before[table] if not _carries(r, traces)], table
    assert result.customer_ids_count == 3


def test_receipts_are_kept_once_and_carry_no_personal_data(
    loaded: tuple[Settings, Client],
) -> None:
    _, conn = loaded
    before = _snapshot(conn)
    traces = _traces(before)
    started = datetime(2026, 3, 10, 9, 0, tzinfo=UTC)
    result = erase_customer(conn, ANN_IDS, ANN_KEYS)
    done = started + timedelta(seconds=3)
    receipt = ErasureReceipt(
        request_id="er-test-1",
        stores=(
            StoreReceipt(store="kafka.identity-table", keys_removed=5, completed_at=done),
            *result.stores(done),
        ),
        customer_ids_count=result.customer_ids_count,
        started_at=started,
        completed_at=done,
    )
    store_receipt(conn, receipt)
    store_receipt(conn, receipt)  # the pipeline retried: still one receipt
    assert conn.command("SELECT count() FROM privacy_receipts") == 1
    assert find_receipt(conn, "er-test-1") == receipt
    assert find_receipt(conn, "er-unknown") is None
    stored = conn.query("SELECT * FROM privacy_receipts").result_rows
    assert not any(_carries(tuple(row), traces) for row in stored)
    assert not traces & set(_strings(orjson.loads(receipt_record(receipt).value)))
    assert decode_receipt(receipt_record(receipt).value) == receipt
    per_store = conn.query(
        "SELECT store, rows_removed FROM privacy_receipt_stores ORDER BY store"
    ).result_rows
    assert dict(per_store) == {
        "kafka.identity-table": 0,
        **{f"clickhouse.{t}": n for t, n in result.rows_removed.items()},
    }


def test_an_erasure_names_something() -> None:
    with pytest.raises(ValueError, match="nothing to erase"):
        erase_customer(None, [], [])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="kind:value"):
        erase_customer(None, ["c1"], ["no-kind"])  # type: ignore[arg-type]


def test_cluster_deletes_go_to_the_local_tables_on_every_shard(clickhouse_client: Client) -> None:
    cluster = Cluster("analytics", "shop")
    parameters = {"ids": ["c1"], "keys": ["k:v"], "events": ["e1"], "needles": ['"v"']}
    for table in ERASED_TABLES:
        statement = delete_statement(table, cluster)
        assert statement.startswith(f"ALTER TABLE {table}_local ON CLUSTER `analytics` DELETE")
        used = {k: v for k, v in parameters.items() if "{" + k + ":" in statement}
        ast = clickhouse_client.raw_query(
            f"EXPLAIN AST {statement}", parameters=used, fmt="TabSeparatedRaw"
        ).decode()
        assert ast.startswith(f"AlterQuery  {table}_local"), ast[:80]
