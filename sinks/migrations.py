"""Versioned ClickHouse schema: `sinks/ddl/NNNN_name.sql` applied in order, once each.

`migrate` is idempotent: applied versions are recorded in `schema_migrations` (with a checksum,
so an edited migration is refused rather than silently skipped), and every statement is itself
re-runnable (IF NOT EXISTS, OR REPLACE), so a migration interrupted halfway can be run again.
Retention (TTL) comes from settings and is reconciled on every run, recorded in
`schema_retention`, and changed with ALTER only when the configured days differ.

With a cluster (`--cluster NAME` or setting clickhouse.cluster) the same migrations run in their
cluster form (`sinks.cluster`): replicated local tables, Distributed tables and views ON CLUSTER;
the bookkeeping tables are replicated to every server. `script` prints what `migrate` would run.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from clickhouse_connect.driver.client import Client

from omnijourney.exceptions import MigrationError
from omnijourney.settings import RetentionSettings, Settings
from sinks import rows
from sinks.clickhouse import client
from sinks.cluster import Cluster, cluster_statements, local_name, shared_table

DDL_DIR: Final = Path(__file__).parent / "ddl"
_FILE: Final = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")

BOOKKEEPING: Final = (
    """CREATE TABLE IF NOT EXISTS schema_migrations
(
    version UInt32,
    name String,
    checksum String,
    applied_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree
ORDER BY version""",
    """CREATE TABLE IF NOT EXISTS schema_retention
(
    table_name String,
    days UInt32,
    applied_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(applied_at)
ORDER BY table_name""",
)

RETENTION_COLUMNS: Final[dict[str, tuple[str, str]]] = {
    rows.TOUCHPOINTS: ("touchpoints_days", "occurred_at"),
    rows.ANONYMOUS: ("touchpoints_days", "occurred_at"),
    rows.SESSIONS: ("sessions_days", "started_at"),
    rows.JOURNEYS: ("journeys_days", "started_at"),
    rows.LINKS: ("identity_days", "ingested_at"),
    rows.MERGES: ("identity_days", "ingested_at"),
    rows.REJECTIONS: ("identity_days", "ingested_at"),
    rows.DEAD_LETTERS: ("dead_letters_days", "received_at"),
}
"""Table -> (retention setting, time column). customer_aliases never expires."""


@dataclass(frozen=True)
class Migration:
    """One versioned DDL file."""

    version: int
    name: str
    statements: tuple[str, ...]
    checksum: str


def split_statements(sql: str) -> list[str]:
    """The statements of a DDL script: split at `;` outside strings, quoted names and comments."""
    statements: list[str] = []
    current: list[str] = []
    i, n = 0, len(sql)
    while i < n:
        ch = sql[i]
        if ch == "-" and sql.startswith("--", i):
            end = sql.find("\n", i)
            i = n if end < 0 else end + 1
            current.append("\n")
            continue
        if ch in "'`\"":
            j = i + 1
            while j < n and sql[j] != ch:
                j += 2 if sql[j] == "\\" else 1
            current.append(sql[i : j + 1])
            i = j + 1
            continue
        if ch == ";":
            statements.append("".join(current))
            current = []
        else:
            current.append(ch)
        i += 1
    statements.append("".join(current))
    return [s.strip() for s in statements if s.strip()]


def load_migrations(directory: Path = DDL_DIR) -> list[Migration]:
    """Every migration in the directory, by version."""
    found: list[Migration] = []
    for path in sorted(directory.glob("*.sql")):
        match = _FILE.match(path.name)
        if match is None:
            raise MigrationError(f"{path.name}: migrations are named NNNN_name.sql")
        text = path.read_text(encoding="utf-8")
        found.append(
            Migration(
                version=int(match.group(1)),
                name=match.group(2),
                statements=tuple(split_statements(text)),
                checksum=hashlib.sha256(text.encode()).hexdigest(),
            )
        )
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"two migrations share a version in {directory}")
    return found


def ttl_statement(table: str, days: int, column: str, cluster: Cluster | None = None) -> str:
    """The ALTER that sets (days > 0) or removes (0) a table's retention.

    On a cluster the TTL belongs to the local tables: Distributed tables store nothing.
    """
    target = table if cluster is None else f"{local_name(table)} {cluster.on}"
    if days > 0:
        return f"ALTER TABLE {target} MODIFY TTL toDateTime({column}) + INTERVAL {days} DAY"
    return f"ALTER TABLE {target} REMOVE TTL"


def cluster_of(settings: Settings, name: str | None = None) -> Cluster | None:
    """The cluster of the schema: `name`, else setting clickhouse.cluster; None: one server."""
    chosen = name if name is not None else settings.clickhouse.cluster
    return Cluster(chosen, settings.clickhouse.database) if chosen else None


def create_database(database: str, cluster: Cluster | None = None) -> str:
    """CREATE DATABASE of the schema (on every server of the cluster if there is one)."""
    on = f" {cluster.on}" if cluster is not None else ""
    return f"CREATE DATABASE IF NOT EXISTS `{database}`{on}"


def bookkeeping_statements(cluster: Cluster | None = None) -> list[str]:
    """The tables recording applied migrations and retention (every server holds them whole)."""
    if cluster is None:
        return list(BOOKKEEPING)
    return [shared_table(statement, cluster) for statement in BOOKKEEPING]


def migration_statements(migration: Migration, cluster: Cluster | None = None) -> list[str]:
    """What applying a migration runs: its statements, or their cluster form."""
    if cluster is None:
        return list(migration.statements)
    return [
        out for statement in migration.statements for out in cluster_statements(statement, cluster)
    ]


def retention_plan(retention: RetentionSettings, applied: dict[str, int]) -> list[tuple[str, int]]:
    """(table, days) whose retention must change, given the days recorded as applied."""
    plan: list[tuple[str, int]] = []
    for table, (setting, _) in RETENTION_COLUMNS.items():
        days = int(getattr(retention, setting))
        if applied.get(table, 0) != days:
            plan.append((table, days))
    return plan


def _applied(conn: Client) -> dict[int, tuple[str, str]]:
    result = conn.query("SELECT version, name, checksum FROM schema_migrations FINAL")
    return {int(v): (str(name), str(checksum)) for v, name, checksum in result.result_rows}


def _record(migration: Migration) -> str:
    return (
        "INSERT INTO schema_migrations (version, name, checksum) VALUES "
        f"({migration.version}, '{migration.name}', '{migration.checksum}')"
    )


def _apply(conn: Client, migration: Migration, cluster: Cluster | None) -> None:
    for statement in migration_statements(migration, cluster):
        try:
            conn.command(statement)
        except Exception as exc:
            head = " ".join(statement.split())[:80]
            raise MigrationError(
                f"migration {migration.version:04d}_{migration.name} failed at `{head}...`: {exc}"
            ) from exc
    conn.command(_record(migration))


def _ttl_sql(table: str, days: int, cluster: Cluster | None) -> str:
    # Without materializing, the new TTL applies as parts merge: no rewrite of old data now.
    statement = ttl_statement(table, days, RETENTION_COLUMNS[table][1], cluster)
    return statement + " SETTINGS materialize_ttl_after_modify = 0"


def _retention(conn: Client, retention: RetentionSettings, cluster: Cluster | None) -> list[str]:
    result = conn.query("SELECT table_name, days FROM schema_retention FINAL")
    applied = {str(table): int(days) for table, days in result.result_rows}
    done: list[str] = []
    for table, days in retention_plan(retention, applied):
        conn.command(_ttl_sql(table, days, cluster))
        conn.insert("schema_retention", [(table, days)], column_names=("table_name", "days"))
        done.append(f"retention {table}: {f'{days} days' if days else 'forever'}")
    return done


def _check_cluster(conn: Client, cluster: Cluster, url: str) -> None:
    """Refuse early, and clearly, a server that cannot run the cluster schema."""
    known = conn.command(
        "SELECT count() FROM system.clusters WHERE cluster = {name:String}",
        parameters={"name": cluster.name},
    )
    if int(str(known)) == 0:
        raise MigrationError(
            f"ClickHouse at {url} has no cluster {cluster.name!r}: define it in remote_servers "
            "on every server (see docs/deploy.md, 'What a ClickHouse cluster needs')"
        )
    macros = {str(row[0]) for row in conn.query("SELECT macro FROM system.macros").result_rows}
    missing = sorted({"shard", "replica"} - macros)
    if missing:
        raise MigrationError(
            f"ClickHouse at {url} lacks the macros {', '.join(missing)}: every server of "
            f"cluster {cluster.name!r} needs <macros> with its shard and replica"
        )


def migrate(
    settings: Settings, directory: Path = DDL_DIR, *, cluster: str | None = None
) -> list[str]:
    """Bring the configured database to the latest schema; what was done, one line each.

    `cluster` (default: setting clickhouse.cluster) names the ClickHouse cluster to create the
    replicated and Distributed tables on; empty means one server.
    """
    on = cluster_of(settings, cluster)
    database = settings.clickhouse.database
    admin = client(settings, database="default", autogenerate_session_id=False)
    try:
        if on is not None:
            _check_cluster(admin, on, settings.clickhouse.url)
        admin.command(create_database(database, on))
    finally:
        admin.close()
    conn = client(settings, autogenerate_session_id=False)
    try:
        for statement in bookkeeping_statements(on):
            conn.command(statement)
        applied = _applied(conn)
        done: list[str] = []
        for migration in load_migrations(directory):
            known = applied.get(migration.version)
            if known is not None:
                if known[1] != migration.checksum:
                    raise MigrationError(
                        f"migration {migration.version:04d}_{migration.name} was changed after "
                        "it was applied; add a new migration instead of editing an applied one"
                    )
                continue
            _apply(conn, migration, on)
            done.append(f"applied {migration.version:04d}_{migration.name}")
        done.extend(_retention(conn, settings.sink.retention, on))
        return done
    finally:
        conn.close()


def script(settings: Settings, directory: Path = DDL_DIR, *, cluster: str | None = None) -> str:
    """The SQL `migrate` runs on an empty database, as one script (no connection needed)."""
    on = cluster_of(settings, cluster)
    layout = f"cluster {on.name}" if on is not None else "a single server"
    parts = [
        f"-- omnijourney schema of database {settings.clickhouse.database!r} on {layout}:\n"
        "-- what `omnijourney clickhouse migrate` runs on an empty database, recording included\n"
        "-- (e.g. clickhouse-client --multiquery < schema.sql).",
        create_database(settings.clickhouse.database, on) + ";",
        f"USE `{settings.clickhouse.database}`;",
        *(statement + ";" for statement in bookkeeping_statements(on)),
    ]
    for migration in load_migrations(directory):
        parts.append(f"-- {migration.version:04d}_{migration.name}")
        parts.extend(statement + ";" for statement in migration_statements(migration, on))
        parts.append(_record(migration) + ";")
    plan = retention_plan(settings.sink.retention, {})
    if plan:
        parts.append("-- retention (sink.retention settings)")
    for table, days in plan:
        parts.append(_ttl_sql(table, days, on) + ";")
        parts.append(f"INSERT INTO schema_retention (table_name, days) VALUES ('{table}', {days});")
    return "\n\n".join(parts) + "\n"
