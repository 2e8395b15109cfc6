"""The cluster schema: generated from the single-node DDL, parsed by the real engine, printed."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator

import pytest
from clickhouse_connect.driver.client import Client

from omnijourney.cli import main
from omnijourney.exceptions import MigrationError
from omnijourney.settings import Settings, load_settings
from sinks.clickhouse import client
from sinks.cluster import SHARDING_KEYS, Cluster, cluster_statements, local_name
from sinks.migrations import (
    load_migrations,
    migrate,
    migration_statements,
    script,
    split_statements,
)
from tests.plugins.clickhouse import free_port

CLUSTER = Cluster("analytics", "shop")
_TABLE = re.compile(r"^CREATE TABLE IF NOT EXISTS (\w+)\s*\(", re.IGNORECASE)
_ORDER_BY = re.compile(r"\bORDER BY \(?([^)\n]+)\)?")


def _tables() -> dict[str, str]:
    """Single-node CREATE TABLE statements of every migration, by table name."""
    found = {}
    for migration in load_migrations():
        for statement in migration.statements:
            match = _TABLE.match(statement)
            if match:
                found[match.group(1)] = statement
    return found


def test_single_node_statements_are_the_files_unchanged() -> None:
    for migration in load_migrations():
        assert migration_statements(migration) == list(migration.statements)
        assert migration_statements(migration, None) == list(migration.statements)
    text = script(load_settings(clickhouse={"database": "shop"}))
    assert "ON CLUSTER" not in text and "Replicated" not in text and "Distributed" not in text
    for migration in load_migrations():
        for statement in migration.statements:
            assert statement + ";" in text


def test_every_table_becomes_a_replicated_local_table_and_a_distributed_one() -> None:
    for name, statement in _tables().items():
        local, distributed = cluster_statements(statement, CLUSTER)
        assert local.startswith(f"CREATE TABLE IF NOT EXISTS {name}_local ON CLUSTER `analytics`")
        assert "ENGINE = Replicated" in local
        assert "'/clickhouse/tables/{shard}/{database}/{table}', '{replica}'" in local
        assert "non_replicated_deduplication_window" not in local
        # the same columns, keys and partitions: everything after the name is carried over
        columns = statement[statement.index("(") : statement.index("ENGINE")]
        assert columns in local
        assert _ORDER_BY.search(statement).group(0) in local  # type: ignore[union-attr]
        assert distributed == (
            f"CREATE TABLE IF NOT EXISTS {name} ON CLUSTER `analytics` AS {name}_local\n"
            f"ENGINE = Distributed('analytics', 'shop', '{name}_local', {SHARDING_KEYS[name]})"
        )


def test_versioned_engines_keep_their_version_column() -> None:
    tables = _tables()
    local = cluster_statements(tables["touchpoints"], CLUSTER)[0]
    assert (
        "ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', "
        "'{replica}', version)" in local
    )
    assert "SETTINGS replicated_deduplication_window = 1000, ttl_only_drop_parts = 1" in local
    links = cluster_statements(tables["identity_links"], CLUSTER)[0]
    assert "ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', " in links
    assert "'{replica}')" in links


def test_sharding_keys_hash_a_column_of_the_sorting_key() -> None:
    # FINAL and ReplacingMergeTree collapse versions only within a shard: every version of a
    # row must land on the same shard, so the key must be made of sorting-key columns.
    tables = _tables()
    assert set(tables) <= set(SHARDING_KEYS)
    for name, statement in tables.items():
        order_by = {c.strip() for c in _ORDER_BY.search(statement).group(1).split(",")}  # type: ignore[union-attr]
        column = re.fullmatch(r"cityHash64\((\w+)\)", SHARDING_KEYS[name])
        assert column is not None and column.group(1) in order_by, name
    assert SHARDING_KEYS["touchpoints"] == "cityHash64(customer_id)"
    # re-published under the survivor after a merge: sharded by their own id, not the customer
    assert SHARDING_KEYS["sessions"] == "cityHash64(session_id)"
    assert SHARDING_KEYS["journeys"] == "cityHash64(journey_id)"


def test_views_get_on_cluster_and_keep_their_body() -> None:
    for migration in load_migrations():
        for statement in migration.statements:
            if " VIEW " not in statement.split("\n")[0]:
                continue
            (out,) = cluster_statements(statement, CLUSTER)
            head, _, body = statement.partition(" AS\n")
            assert out == f"{head} ON CLUSTER `analytics` AS\n{body}"


def test_alters_go_to_local_tables_and_column_changes_to_both() -> None:
    assert cluster_statements("ALTER TABLE touchpoints ADD COLUMN x UInt8", CLUSTER) == [
        "ALTER TABLE touchpoints_local ON CLUSTER `analytics` ADD COLUMN x UInt8",
        "ALTER TABLE touchpoints ON CLUSTER `analytics` ADD COLUMN x UInt8",
    ]
    assert cluster_statements("ALTER TABLE sessions MODIFY TTL toDateTime(x)", CLUSTER) == [
        "ALTER TABLE sessions_local ON CLUSTER `analytics` MODIFY TTL toDateTime(x)"
    ]
    assert local_name("journeys") == "journeys_local"


def test_what_the_generator_does_not_know_is_refused() -> None:
    with pytest.raises(MigrationError, match="no sharding key"):
        cluster_statements("CREATE TABLE IF NOT EXISTS extra (x UInt8) ENGINE = MergeTree", CLUSTER)
    with pytest.raises(MigrationError, match="non-replicated"):
        cluster_statements("CREATE TABLE IF NOT EXISTS sessions (x UInt8) ENGINE = Memory", CLUSTER)
    with pytest.raises(MigrationError, match="no cluster form"):
        cluster_statements("CREATE MATERIALIZED VIEW m TO t AS SELECT 1", CLUSTER)
    with pytest.raises(MigrationError, match="cluster name"):
        Cluster("bad name; DROP", "shop")


# ------------------------------------------------------------------ the real engine's parser


def _parse(conn: Client, statement: str) -> str:
    """EXPLAIN AST of a statement (raises on a syntax error) and its normalized text."""
    ast = conn.raw_query(f"EXPLAIN AST {statement}", fmt="TabSeparatedRaw").decode()
    assert ast.strip(), statement
    return str(
        conn.query("SELECT formatQuery({q:String})", parameters={"q": statement}).result_rows[0][0]
    )


@pytest.mark.clickhouse
def test_every_cluster_statement_parses(clickhouse_client: Client) -> None:
    settings = load_settings(clickhouse={"database": "shop"})
    statements = split_statements(script(settings, cluster="analytics"))
    kinds = {"Distributed": 0, "Replicated": 0, "VIEW": 0, "ALTER": 0}
    for statement in statements:
        normalized = " ".join(_parse(clickhouse_client, statement).split())
        if normalized.startswith(("CREATE", "ALTER")):
            assert " ON CLUSTER analytics" in normalized, normalized[:120]
        for kind in kinds:
            kinds[kind] += kind in normalized
    tables = len(_tables())
    assert kinds["Distributed"] == tables
    assert kinds["Replicated"] == tables + 2  # the bookkeeping tables are replicated too
    views = sum(" VIEW " in s for m in load_migrations() for s in m.statements)
    assert kinds["VIEW"] == views > 0
    assert kinds["ALTER"] >= 1


@pytest.mark.clickhouse
def test_the_parse_check_catches_a_broken_statement(clickhouse_client: Client) -> None:
    with pytest.raises(Exception, match="Syntax error"):
        _parse(clickhouse_client, "CREATE TABLE x ON CLUSTER c (a String) ENGINEE = MergeTree")


# ------------------------------------------------------------------ the command


@pytest.fixture
def unreachable(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No ClickHouse where the settings point: printing must not need one."""
    monkeypatch.setenv("OMNIJOURNEY_CLICKHOUSE__PORT", str(free_port()))
    monkeypatch.setenv("OMNIJOURNEY_CLICKHOUSE__DATABASE", "shop")
    yield


def test_migrate_print_writes_the_cluster_sql(
    unreachable: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["clickhouse", "migrate", "--cluster", "analytics", "--print"]) == 0
    out = capsys.readouterr().out
    assert out == script(load_settings(), cluster="analytics")
    assert "CREATE DATABASE IF NOT EXISTS `shop` ON CLUSTER `analytics`;" in out
    assert "ENGINE = Distributed('analytics', 'shop', 'touchpoints_local'" in out


def test_migrate_print_without_cluster_is_the_single_node_sql(
    unreachable: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["clickhouse", "migrate", "--print"]) == 0
    out = capsys.readouterr().out
    assert out == script(load_settings())
    assert "ON CLUSTER" not in out


def test_the_cluster_setting_is_the_default_of_the_flag(
    unreachable: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("OMNIJOURNEY_CLICKHOUSE__CLUSTER", "warehouse")
    assert main(["clickhouse", "migrate", "--print"]) == 0
    assert "ON CLUSTER `warehouse`" in capsys.readouterr().out


@pytest.fixture
def fresh(clickhouse_settings: Settings) -> Iterator[Settings]:
    name = f"cl_{uuid.uuid4().hex[:10]}"
    ch = clickhouse_settings.clickhouse.model_copy(update={"database": name})
    yield clickhouse_settings.model_copy(update={"clickhouse": ch})
    admin = client(clickhouse_settings, database="default", autogenerate_session_id=False)
    admin.command(f"DROP DATABASE IF EXISTS `{name}`")
    admin.close()


def _schema(settings: Settings) -> dict[str, str]:
    conn = client(settings, database="default", autogenerate_session_id=False)
    try:
        rows = conn.query(
            "SELECT name, replaceAll(create_table_query, {db:String}, '') FROM system.tables "
            "WHERE database = {db:String}",
            parameters={"db": settings.clickhouse.database},
        ).result_rows
        return {str(name): str(query) for name, query in rows}
    finally:
        conn.close()


@pytest.mark.clickhouse
def test_the_printed_single_node_script_builds_what_migrate_builds(
    fresh: Settings, clickhouse_settings: Settings
) -> None:
    statements = split_statements(script(fresh))
    assert statements[1].startswith("USE ")
    admin = client(fresh, database="default", autogenerate_session_id=False)
    admin.command(statements[0])  # CREATE DATABASE
    admin.close()
    conn = client(fresh, autogenerate_session_id=False)
    try:
        for statement in statements[2:]:
            conn.command(statement)
    finally:
        conn.close()
    assert migrate(fresh) == []  # the script recorded what it applied
    other = f"cm_{uuid.uuid4().hex[:10]}"
    migrated = fresh.model_copy(
        update={"clickhouse": fresh.clickhouse.model_copy(update={"database": other})}
    )
    try:
        migrate(migrated)
        assert _schema(fresh) == _schema(migrated)
    finally:
        admin = client(clickhouse_settings, database="default", autogenerate_session_id=False)
        admin.command(f"DROP DATABASE IF EXISTS `{other}`")
        admin.close()


@pytest.mark.clickhouse
def test_migrate_on_a_server_without_the_cluster_is_refused_clearly(
    fresh: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("OMNIJOURNEY_CLICKHOUSE__DATABASE", fresh.clickhouse.database)
    assert main(["clickhouse", "migrate", "--cluster", "analytics"]) == 1
    err = capsys.readouterr().err
    assert "no cluster 'analytics'" in err and "remote_servers" in err
    conn = client(fresh, database="default", autogenerate_session_id=False)
    try:
        assert (
            conn.command(
                "SELECT count() FROM system.databases WHERE name = {db:String}",
                parameters={"db": fresh.clickhouse.database},
            )
            == 0
        )  # refused before anything was created
    finally:
        conn.close()


@pytest.mark.clickhouse
def test_the_sink_cluster_settings_are_accepted_by_the_engine(fresh: Settings) -> None:
    from schemas.contracts import record_from
    from sinks.batches import Batch
    from sinks.rows import rows_of
    from sinks.writer import Writer
    from tests.sinks.story import link, merge

    migrate(fresh)
    on_cluster = fresh.model_copy(
        update={"clickhouse": fresh.clickhouse.model_copy(update={"cluster": "analytics"})}
    )
    batch = Batch("identity.links", 0, 0.0)
    batch.add(0, rows_of(record_from(link("c01", "anonymous_id", "ck-9", "e9"))), 100)
    batch.add(1, rows_of(record_from(merge("c01", "c02", "anonymous_id", "ck-9", "e9"))), 100)
    writer = Writer(on_cluster)
    try:
        assert writer.write(batch) == 3  # link, merge and alias; settings with a typo would fail
    finally:
        writer.close()
