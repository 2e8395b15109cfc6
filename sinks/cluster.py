"""The ClickHouse cluster variant of the schema, generated from the single-node DDL (pure).

`sinks/ddl/*.sql` stays the one description of the tables and views. For a cluster every
statement is rewritten, never copied by hand:

* `CREATE TABLE x (...) ENGINE = <Kind>MergeTree(args)` becomes a replicated local table
  `x_local ON CLUSTER` (`Replicated<Kind>MergeTree('/clickhouse/tables/{shard}/{database}/
  {table}', '{replica}', args)`, the same columns, keys, partitions and settings, with
  `non_replicated_deduplication_window` turned into `replicated_deduplication_window`), plus a
  Distributed table `x ON CLUSTER` over it, sharded by `SHARDING_KEYS[x]`. Readers and the sink
  keep using the plain names.
* `CREATE [OR REPLACE] VIEW v AS ...` gets `ON CLUSTER`; its body reads the Distributed tables.
* `ALTER TABLE x ...` goes to `x_local ON CLUSTER` (and column changes to `x` too).

Anything else is refused with MigrationError, so a new kind of statement in a migration is a
conscious extension here rather than a silently wrong cluster schema.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from omnijourney.exceptions import MigrationError

REPLICA_PATH: Final = "/clickhouse/tables/{shard}/{database}/{table}"
"""Keeper path of a sharded table's replicas (macros expanded by each server)."""
SHARED_PATH: Final = "/clickhouse/tables/all/{database}/{table}"
"""Keeper path of a table every server of the cluster holds in full (bookkeeping)."""
REPLICA_NAME: Final = "{replica}"
SHARED_REPLICA_NAME: Final = "{shard}-{replica}"
"""Unique in the whole cluster even where {replica} is only unique within a shard."""
LOCAL_SUFFIX: Final = "_local"

SHARDING_KEYS: Final[dict[str, str]] = {
    "touchpoints": "cityHash64(customer_id)",
    # Sessions and journeys are versioned by their own id, and a merge re-publishes them under
    # the survivor: sharding by customer would put two versions of one id on two shards, where
    # FINAL (per shard) could no longer collapse them.
    "sessions": "cityHash64(session_id)",
    "journeys": "cityHash64(journey_id)",
    "identity_links": "cityHash64(customer_id)",
    "identity_merges": "cityHash64(alias_id)",
    "identity_rejections": "cityHash64(customer_id)",
    "customer_aliases": "cityHash64(alias_id)",
    "dead_letters": "cityHash64(dead_letter_id)",
    "privacy_receipts": "cityHash64(request_id)",
    "anonymous_touchpoints": "cityHash64(event_id)",
}
"""Sharding expression of each table: a hash of a column of its sorting key.

Every version of a row then lands on one shard, so ReplacingMergeTree and FINAL, which only
collapse rows within a shard, stay correct; a customer's touchpoints and identity rows stay
together.
"""

_NAME: Final = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_CREATE_TABLE: Final = re.compile(
    r"^CREATE\s+TABLE\s+(IF\s+NOT\s+EXISTS\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*\(", re.IGNORECASE
)
_ENGINE: Final = re.compile(
    r"\bENGINE\s*=\s*([A-Za-z]*MergeTree)\b(?:\s*\(([^()]*)\))?", re.IGNORECASE
)
_CREATE_VIEW: Final = re.compile(
    r"^(CREATE\s+(?:OR\s+REPLACE\s+)?VIEW\s+(?:IF\s+NOT\s+EXISTS\s+)?[A-Za-z_][A-Za-z0-9_]*)"
    r"(\s+AS\b)",
    re.IGNORECASE,
)
_ALTER_TABLE: Final = re.compile(
    r"^ALTER\s+TABLE\s+([A-Za-z_][A-Za-z0-9_]*)\s+(.*)$", re.IGNORECASE | re.DOTALL
)
_COLUMN_CHANGE: Final = re.compile(r"^(ADD|DROP|MODIFY|RENAME|COMMENT)\s+COLUMN\b", re.IGNORECASE)
_DEDUP_WINDOW: Final = re.compile(r"\bnon_replicated_deduplication_window\b", re.IGNORECASE)


def _literal(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


@dataclass(frozen=True, slots=True)
class Cluster:
    """A ClickHouse cluster (its name in remote_servers) and the database on it."""

    name: str
    database: str

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise MigrationError(
                f"cluster name {self.name[:40]!r}: use letters, digits, '_', '.', '-' "
                "(as in the servers' remote_servers)"
            )
        if not self.database or "`" in self.database:
            raise MigrationError(f"database name {self.database[:40]!r} is not usable")

    @property
    def on(self) -> str:
        """The ON CLUSTER clause."""
        return f"ON CLUSTER `{self.name}`"


def local_name(table: str) -> str:
    """The name of a Distributed table's local (replicated) table."""
    return table + LOCAL_SUFFIX


def _replicated_engine(statement: str, path: str, replica: str) -> str:
    match = _ENGINE.search(statement)
    if match is None or match.group(1).lower().startswith("replicated"):
        raise MigrationError(
            "the cluster generator turns non-replicated *MergeTree tables into replicated "
            f"ones; cannot rewrite `{_head(statement)}`"
        )
    kind, args = match.group(1), (match.group(2) or "").strip()
    params = ", ".join(p for p in (_literal(path), _literal(replica), args) if p)
    engine = f"ENGINE = Replicated{kind}({params})"
    replaced = statement[: match.start()] + engine + statement[match.end() :]
    return _DEDUP_WINDOW.sub("replicated_deduplication_window", replaced)


def _head(statement: str) -> str:
    return " ".join(statement.split())[:80]


def _table(statement: str, match: re.Match[str], cluster: Cluster) -> list[str]:
    name = match.group(2)
    key = SHARDING_KEYS.get(name)
    if key is None:
        raise MigrationError(
            f"table {name} has no sharding key: add it to sinks.cluster.SHARDING_KEYS "
            "(a hash of a column of its ORDER BY)"
        )
    exists = "IF NOT EXISTS " if match.group(1) else ""
    local = local_name(name)
    body = statement[match.end() - 1 :]
    create_local = f"CREATE TABLE {exists}{local} {cluster.on}\n{body}"
    distributed = (
        f"CREATE TABLE {exists}{name} {cluster.on} AS {local}\n"
        f"ENGINE = Distributed({_literal(cluster.name)}, {_literal(cluster.database)}, "
        f"{_literal(local)}, {key})"
    )
    return [_replicated_engine(create_local, REPLICA_PATH, REPLICA_NAME), distributed]


def _alter(match: re.Match[str], cluster: Cluster) -> list[str]:
    name, rest = match.group(1), match.group(2).strip()
    statements = [f"ALTER TABLE {local_name(name)} {cluster.on} {rest}"]
    if _COLUMN_CHANGE.match(rest):
        statements.append(f"ALTER TABLE {name} {cluster.on} {rest}")  # its columns mirror local
    return statements


def cluster_statements(statement: str, cluster: Cluster) -> list[str]:
    """The cluster statements of one single-node statement, in the order they must run."""
    text = statement.strip()
    table = _CREATE_TABLE.match(text)
    if table is not None:
        return _table(text, table, cluster)
    view = _CREATE_VIEW.match(text)
    if view is not None:
        return [f"{view.group(1)} {cluster.on}{text[view.end(1) :]}"]
    alter = _ALTER_TABLE.match(text)
    if alter is not None:
        return _alter(alter, cluster)
    raise MigrationError(
        f"no cluster form known for `{_head(text)}...`: extend sinks/cluster.py "
        "(CREATE TABLE, CREATE VIEW and ALTER TABLE are supported)"
    )


def shared_table(statement: str, cluster: Cluster) -> str:
    """A table every server holds in full (one replica set across all shards), ON CLUSTER."""
    match = _CREATE_TABLE.match(statement.strip())
    if match is None:
        raise MigrationError(f"not a CREATE TABLE: `{_head(statement)}`")
    exists = "IF NOT EXISTS " if match.group(1) else ""
    body = statement.strip()[match.end() - 1 :]
    create = f"CREATE TABLE {exists}{match.group(2)} {cluster.on}\n{body}"
    return _replicated_engine(create, SHARED_PATH, SHARED_REPLICA_NAME)
