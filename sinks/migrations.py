"""Versioned ClickHouse schema: `sinks/ddl/NNNN_name.sql` applied in order, once each.

`migrate` is idempotent: applied versions are recorded in `schema_migrations` (with a checksum,
so an edited migration is refused rather than silently skipped), and every statement is itself
re-runnable (IF NOT EXISTS, OR REPLACE), so a migration interrupted halfway can be run again.
Retention (TTL) comes from settings and is reconciled on every run, recorded in
`schema_retention`, and changed with ALTER only when the configured days differ.
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


def ttl_statement(table: str, days: int, column: str) -> str:
    """The ALTER that sets (days > 0) or removes (0) a table's retention."""
    if days > 0:
        return f"ALTER TABLE {table} MODIFY TTL toDateTime({column}) + INTERVAL {days} DAY"
    return f"ALTER TABLE {table} REMOVE TTL"


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


def _apply(conn: Client, migration: Migration) -> None:
    for statement in migration.statements:
        try:
            conn.command(statement)
        except Exception as exc:
            head = " ".join(statement.split())[:80]
            raise MigrationError(
                f"migration {migration.version:04d}_{migration.name} failed at `{head}...`: {exc}"
            ) from exc
    conn.insert(
        "schema_migrations",
        [(migration.version, migration.name, migration.checksum)],
        column_names=("version", "name", "checksum"),
    )


def _retention(conn: Client, retention: RetentionSettings) -> list[str]:
    result = conn.query("SELECT table_name, days FROM schema_retention FINAL")
    applied = {str(table): int(days) for table, days in result.result_rows}
    done: list[str] = []
    for table, days in retention_plan(retention, applied):
        column = RETENTION_COLUMNS[table][1]
        # Without materializing, the new TTL applies as parts merge: no rewrite of old data now.
        conn.command(
            ttl_statement(table, days, column), settings={"materialize_ttl_after_modify": 0}
        )
        conn.insert("schema_retention", [(table, days)], column_names=("table_name", "days"))
        done.append(f"retention {table}: {f'{days} days' if days else 'forever'}")
    return done


def migrate(settings: Settings, directory: Path = DDL_DIR) -> list[str]:
    """Bring the configured database to the latest schema; what was done, one line each."""
    database = settings.clickhouse.database
    admin = client(settings, database="default", autogenerate_session_id=False)
    try:
        admin.command(f"CREATE DATABASE IF NOT EXISTS `{database}`")
    finally:
        admin.close()
    conn = client(settings, autogenerate_session_id=False)
    try:
        for statement in BOOKKEEPING:
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
            _apply(conn, migration)
            done.append(f"applied {migration.version:04d}_{migration.name}")
        done.extend(_retention(conn, settings.sink.retention))
        return done
    finally:
        conn.close()
