"""Check the sink's DDL and saved queries on another ClickHouse engine (e.g. 24.8 LTS).

The schema (`sinks/ddl`), the alias flattening query and every saved query run on
the engine of chdb in this project's venv (the reference) and on the engine of another chdb
installed in a separate venv; the answers on the scripted test story must be equal.

    python -m venv /tmp/ch248 && /tmp/ch248/bin/pip install chdb==2.1.1   # ClickHouse 24.8.4
    PYTHONPATH=. python tools/clickhouse_compat.py /tmp/ch248/bin/python

The other interpreter only needs chdb: it runs this file with `--engine` and gets its work
(statements, rows as JSONEachRow, queries with parameters inlined) as JSON on stdin.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
from typing import Any

_PARAM = re.compile(r"\{(\w+):([^{}]+)\}")


def engine(job: dict[str, Any]) -> dict[str, Any]:
    """Run a job on the chdb of this interpreter: its version and every query's answer."""
    from chdb import session as chs  # the only import the other interpreter needs

    with tempfile.TemporaryDirectory() as path:
        db = chs.Session(path)

        def run(sql: str, fmt: str = "JSONCompact") -> str:
            # a USE of an older chdb session does not outlive its query
            return str(db.query(f"USE compat; {sql}", fmt))

        db.query("CREATE DATABASE IF NOT EXISTS compat")
        version = run("SELECT version()", "TSV").strip()
        for statement in job["ddl"]:
            run(statement)
        for table, lines in job["rows"].items():
            run(
                f"INSERT INTO {table} SETTINGS date_time_input_format = 'best_effort' "
                "FORMAT JSONEachRow " + "\n".join(lines)
            )
        for statement in job["after"]:
            run(statement)
        answers = {}
        for name, sql in job["queries"].items():
            try:
                answers[name] = json.loads(run(sql))["data"]
            except Exception as exc:  # report every failure, not only the first
                answers[name] = f"ERROR: {exc}"
        return {"version": version, "answers": answers}


def _inline(sql: str, params: dict[str, str]) -> str:
    """Parameters as typed literals (chdb sessions of older versions take no parameters)."""

    def literal(match: re.Match[str]) -> str:
        value = params[match.group(1)].replace("\\", "\\\\").replace("'", "\\'")
        return f"CAST('{value}', '{match.group(2)}')"

    return _PARAM.sub(literal, sql)


def _job() -> dict[str, Any]:
    import orjson

    from schemas.contracts import decode_record
    from sinks import migrations, reports, rows
    from sinks.writer import MISSING_ALIASES
    from tests.sinks import story

    ddl = [s for m in migrations.load_migrations() for s in m.statements]
    by_table: dict[str, list[str]] = {}
    records = [orjson.dumps(r) for r in story.story()]
    for raw in records:
        for table, row in rows.rows_of(decode_record(raw)):
            data = dict(zip(rows.COLUMNS[table], row, strict=True))
            by_table.setdefault(table, []).append(orjson.dumps(data, default=str).decode())
    ids = sorted({r["alias_id"] for r in story.story() if r["record_type"] == "merge"}) + sorted(
        {r["survivor_id"] for r in story.story() if r["record_type"] == "merge"}
    )
    # one pass of the writer's flattening, as a single statement
    flatten = _inline(
        "INSERT INTO customer_aliases (alias_id, survivor_id, direct, event_id) " + MISSING_ALIASES,
        {"ids": "[" + ",".join(f"'{i}'" for i in ids) + "]"},
    )
    after = [flatten, *migrations.BOOKKEEPING]
    for table, (_, column) in migrations.RETENTION_COLUMNS.items():
        after.append(migrations.ttl_statement(table, 3650, column))
        after.append(migrations.ttl_statement(table, 0, column))
    # the same token twice: the second insert must be dropped (non-replicated deduplication)
    after += [
        "INSERT INTO identity_links (customer_id, identifier_kind, identifier_value, event_id) "
        f"SETTINGS insert_deduplication_token = 'compat' VALUES ('c9', 'k', '{n}', 'e')"
        for n in (1, 2)
    ]
    queries = {"deduplication": "SELECT count() FROM identity_links WHERE customer_id = 'c9'"}
    cases = {
        "segments": {"as_of": "2026-03-12"},
        "online_never_store": {"as_of": "2026-03-12"},
        "dead_letters": {"days": "100000"},
    }
    for name, query in reports.load_queries().items():
        queries[name] = _inline(query.sql, reports.bind(query, cases.get(name, {})))
    for view in ("touchpoints_current", "sessions_current", "journeys_current", "journey_paths"):
        # ingested_at is the insert time of each engine's own run
        queries[view] = f"SELECT * EXCEPT (ingested_at) FROM {view} ORDER BY ALL"
    queries["customer_alias_map"] = "SELECT * FROM customer_alias_map ORDER BY ALL"
    return {"ddl": ddl, "rows": by_table, "after": after, "queries": queries}


def main() -> int:
    """Compare the reference engine with the one of the interpreter given."""
    if sys.argv[1:] == ["--engine"]:
        print(json.dumps(engine(json.load(sys.stdin))))
        return 0
    job = _job()
    reference = engine(job)
    other = subprocess.run(
        [sys.argv[1], __file__, "--engine"],
        input=json.dumps(job),
        capture_output=True,
        text=True,
        check=True,
    )
    theirs = json.loads(other.stdout)
    print(f"reference engine {reference['version']}, other engine {theirs['version']}")
    failures = 0
    for name, answer in reference["answers"].items():
        same = answer == theirs["answers"][name]
        failures += not same
        state = "same answer" if same else f"DIFFERS: {theirs['answers'][name]} vs {answer}"
        if isinstance(answer, str):
            state = f"reference failed: {answer:.300}"
            failures += 1
        print(f"  {name:<22} {len(answer) if isinstance(answer, list) else '-':>4} rows  {state}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
