"""The versioned schema: statement splitting, ordering, idempotent migrate, retention (TTL)."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from clickhouse_connect.driver.client import Client

from omnijourney.cli import main
from omnijourney.exceptions import MigrationError
from omnijourney.settings import RetentionSettings, Settings
from sinks.clickhouse import client
from sinks.migrations import (
    DDL_DIR,
    RETENTION_COLUMNS,
    load_migrations,
    migrate,
    retention_plan,
    split_statements,
    ttl_statement,
)
from sinks.rows import COLUMNS

VIEWS = {
    "customer_alias_map",
    "touchpoints_current",
    "sessions_current",
    "journeys_current",
    "customer_identifiers",
    "single_customer_view",
    "journey_paths",
    "privacy_receipt_stores",
}


def test_statements_split_outside_strings_and_comments() -> None:
    sql = """
    -- a comment; with a semicolon
    CREATE TABLE a (x String COMMENT 'one; two', `we;ird` UInt8);
    CREATE VIEW b AS SELECT 'it''s; fine' AS y, "q;uoted" -- trailing; comment
    ;
    ;
    """
    statements = split_statements(sql)
    assert len(statements) == 2
    assert statements[0].startswith("CREATE TABLE a") and "'one; two'" in statements[0]
    assert "`we;ird`" in statements[0]
    assert statements[1].startswith("CREATE VIEW b") and "'it''s; fine'" in statements[1]
    assert "trailing" not in statements[1]


def test_migrations_are_ordered_and_named(tmp_path: Path) -> None:
    found = load_migrations()
    assert [m.version for m in found] == sorted(m.version for m in found)
    assert [m.name for m in found[:2]] == ["tables", "views"]
    assert all(m.statements for m in found)
    (tmp_path / "1_bad.sql").write_text("SELECT 1")
    with pytest.raises(MigrationError, match=r"NNNN_name\.sql"):
        load_migrations(tmp_path)


def test_retention_plan() -> None:
    retention = RetentionSettings(touchpoints_days=30, dead_letters_days=0)
    applied = {"touchpoints": 730, "sessions": 730, "journeys": 730, "dead_letters": 90}
    applied["anonymous_touchpoints"] = 730  # follows touchpoints_days (decision 0016)
    assert retention_plan(retention, applied) == [
        ("touchpoints", 30),
        ("anonymous_touchpoints", 30),
        ("dead_letters", 0),
    ]
    assert ttl_statement("touchpoints", 30, "occurred_at") == (
        "ALTER TABLE touchpoints MODIFY TTL toDateTime(occurred_at) + INTERVAL 30 DAY"
    )
    assert ttl_statement("dead_letters", 0, "received_at") == "ALTER TABLE dead_letters REMOVE TTL"
    assert "customer_aliases" not in RETENTION_COLUMNS  # aliases must outlive every row


@pytest.fixture
def fresh(clickhouse_settings: Settings) -> Iterator[Settings]:
    name = f"mig_{uuid.uuid4().hex[:10]}"
    settings = clickhouse_settings.model_copy(
        update={"clickhouse": clickhouse_settings.clickhouse.model_copy(update={"database": name})}
    )
    yield settings
    admin = client(settings, database="default", autogenerate_session_id=False)
    admin.command(f"DROP DATABASE IF EXISTS `{name}`")
    admin.close()


def _conn(settings: Settings) -> Client:
    return client(settings, autogenerate_session_id=False)


def _create_query(conn: Client, table: str) -> str:
    return str(
        conn.command(
            "SELECT create_table_query FROM system.tables "
            "WHERE database = currentDatabase() AND name = {t:String}",
            parameters={"t": table},
        )
    )


@pytest.mark.clickhouse
def test_migrate_creates_everything_once(fresh: Settings) -> None:
    done = migrate(fresh)
    assert done[:2] == ["applied 0001_tables", "applied 0002_views"]
    assert "retention touchpoints: 730 days" in done
    assert migrate(fresh) == []  # nothing left to do
    conn = _conn(fresh)
    try:
        tables = {
            name: engine
            for name, engine in conn.query(
                "SELECT name, engine FROM system.tables WHERE database = currentDatabase()"
            ).result_rows
        }
        for table in COLUMNS:
            assert tables[table] == "ReplacingMergeTree", table
        assert {name for name, engine in tables.items() if engine == "View"} == VIEWS
        versions = conn.query("SELECT version FROM schema_migrations ORDER BY version").result_rows
        assert [v for (v,) in versions] == [m.version for m in load_migrations()]
    finally:
        conn.close()


@pytest.mark.clickhouse
def test_the_sink_columns_are_the_table_columns(fresh: Settings) -> None:
    migrate(fresh)
    conn = _conn(fresh)
    try:
        for table, columns in COLUMNS.items():
            names = conn.query(
                "SELECT name FROM system.columns WHERE database = currentDatabase() "
                "AND table = {t:String} ORDER BY position",
                parameters={"t": table},
            ).result_rows
            assert [n for (n,) in names if n != "ingested_at"] == list(columns), table
    finally:
        conn.close()


@pytest.mark.clickhouse
def test_tables_deduplicate_inserts_and_use_low_cardinality_and_codecs(fresh: Settings) -> None:
    migrate(fresh)
    conn = _conn(fresh)
    try:
        touchpoints = _create_query(conn, "touchpoints")
        assert "non_replicated_deduplication_window = 1000" in touchpoints
        assert "PARTITION BY toYYYYMM(occurred_at)" in touchpoints
        assert "ORDER BY (customer_id, occurred_at, event_id)" in touchpoints
        assert "`channel` LowCardinality(String)" in touchpoints
        assert "CODEC(Delta(8), ZSTD(1))" in touchpoints
        for token in ("t-1", "t-1", "t-2"):
            conn.command(
                "INSERT INTO identity_links (customer_id, identifier_kind, identifier_value, "
                "event_id, schema_version) VALUES ('c1', 'k', 'v', 'e1', 1)",
                settings={"insert_deduplication_token": token},
            )
        assert conn.command("SELECT count() FROM identity_links") == 2
    finally:
        conn.close()


@pytest.mark.clickhouse
def test_retention_follows_the_settings(fresh: Settings) -> None:
    migrate(fresh)
    conn = _conn(fresh)
    try:
        assert "TTL toDateTime(occurred_at) + toIntervalDay(730)" in _create_query(
            conn, "touchpoints"
        )
        assert "TTL" not in _create_query(conn, "identity_links")  # 0: forever
        sink = fresh.sink.model_copy(
            update={"retention": RetentionSettings(touchpoints_days=30, dead_letters_days=0)}
        )
        done = migrate(fresh.model_copy(update={"sink": sink}))
        assert done == [
            "retention touchpoints: 30 days",
            "retention anonymous_touchpoints: 30 days",
            "retention dead_letters: forever",
        ]
        assert "toIntervalDay(30)" in _create_query(conn, "touchpoints")
        assert "TTL" not in _create_query(conn, "dead_letters")
        assert migrate(fresh.model_copy(update={"sink": sink})) == []
    finally:
        conn.close()


@pytest.mark.clickhouse
def test_new_migrations_apply_and_edited_ones_are_refused(fresh: Settings, tmp_path: Path) -> None:
    ddl = tmp_path / "ddl"
    shutil.copytree(DDL_DIR, ddl)
    migrate(fresh, ddl)
    (ddl / "0099_extra.sql").write_text(
        "CREATE TABLE IF NOT EXISTS extra (x UInt8) ENGINE = Memory;\n"
    )
    assert migrate(fresh, ddl) == ["applied 0099_extra"]
    views = ddl / "0002_views.sql"
    views.write_text(views.read_text() + "\n-- edited\n")
    with pytest.raises(MigrationError, match="0002_views was changed after it was applied"):
        migrate(fresh, ddl)


@pytest.mark.clickhouse
def test_migrate_command(
    fresh: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("OMNIJOURNEY_CLICKHOUSE__DATABASE", fresh.clickhouse.database)
    assert main(["clickhouse", "migrate"]) == 0
    assert "clickhouse: applied 0001_tables" in capsys.readouterr().out
    assert main(["clickhouse", "migrate"]) == 0
    assert capsys.readouterr().out == (
        f"clickhouse: schema of {fresh.clickhouse.database!r} is up to date\n"
    )
