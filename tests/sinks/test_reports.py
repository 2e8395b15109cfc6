"""Saved queries: their header, parameters, and the table, CSV and JSON renderers (pure)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from omnijourney.exceptions import ReportError
from sinks.reports import (
    RENDERERS,
    Result,
    bind,
    catalogue,
    load_queries,
    parse_params,
    parse_query,
    render,
    saved_query,
)

REPORTS = {
    "attribution",
    "customer",
    "dead_letters",
    "funnel",
    "online_never_store",
    "paths",
    "ropo",
    "segments",
}


def test_every_saved_query_documents_itself() -> None:
    queries = load_queries()
    assert set(queries) == REPORTS
    for query in queries.values():
        assert query.title and query.sql and not query.sql.startswith("--")
        for param in query.params:
            assert param.doc and param.type
    assert [p.name for p in queries["ropo"].params] == ["days"]
    assert queries["ropo"].params[0].default == "7"
    assert queries["customer"].params[0].default == ""


def test_header_parsing() -> None:
    query = parse_query(
        "demo",
        "-- Title line.\n-- More words.\n-- param n UInt32 = 3: how many\n"
        "-- param at DateTime64(3, 'UTC') = 2026-01-01 00:00:00: when\n"
        "SELECT {n:UInt32}, {at:DateTime64(3, 'UTC')}\n",
    )
    assert (query.title, query.description) == ("Title line.", "More words.")
    assert [(p.name, p.type, p.default) for p in query.params] == [
        ("n", "UInt32", "3"),
        ("at", "DateTime64(3, 'UTC')", "2026-01-01 00:00:00"),
    ]
    assert query.sql.startswith("SELECT")
    with pytest.raises(ReportError, match="declares 'x' but never uses it"):
        parse_query("bad", "-- T\n-- param x UInt8 = 1: unused\nSELECT 1")
    with pytest.raises(ReportError, match="no title"):
        parse_query("bad", "SELECT 1")


def test_binding_parameters() -> None:
    ropo = saved_query("ropo")
    assert bind(ropo, {}) == {"days": "7"}
    assert bind(ropo, {"days": "14"}) == {"days": "14"}
    with pytest.raises(ReportError, match="has no parameter weeks"):
        bind(ropo, {"weeks": "2"})
    with pytest.raises(ReportError, match="no report 'nope'"):
        saved_query("nope")
    assert parse_params(["a=1", "b=x=y", "c="]) == {"a": "1", "b": "x=y", "c": ""}
    with pytest.raises(ReportError, match="expected name=value"):
        parse_params(["days"])


def test_saved_query_names(tmp_path: Path) -> None:
    (tmp_path / "Bad-Name.sql").write_text("-- t\nSELECT 1")
    with pytest.raises(ReportError, match="lower_snake_case"):
        load_queries(tmp_path)


RESULT = Result(
    ("name", "n", "value", "at", "tags"),
    (
        ("web", 12, Decimal("120.5000"), datetime(2026, 3, 2, 10, 0, tzinfo=UTC), ["a", "b"]),
        # naive datetimes come back from columns without a time zone
        ("callcenter", 3, None, datetime(2026, 3, 2, 10, 0, 0, 250000), {"pos": 1}),  # noqa: DTZ001
    ),
)


def test_table() -> None:
    assert render(RESULT, "table").splitlines() == [
        "name         n  value  at                      tags",
        "----------  --  -----  ----------------------  ---------",
        'web         12  120.5  2026-03-02 10:00:00     ["a","b"]',
        'callcenter   3         2026-03-02 10:00:00.25  {"pos":1}',
        "(2 rows)",
    ]
    assert render(Result((), ()), "table") == "(no rows)\n"


def test_csv_and_json() -> None:
    assert render(RESULT, "csv").splitlines() == [
        "name,n,value,at,tags",
        'web,12,120.5,2026-03-02 10:00:00,"[""a"",""b""]"',
        'callcenter,3,,2026-03-02 10:00:00.25,"{""pos"":1}"',
    ]
    assert json.loads(render(RESULT, "json")) == [
        {"name": "web", "n": 12, "value": "120.5", "at": "2026-03-02T10:00:00+00:00",
         "tags": ["a", "b"]},
        {"name": "callcenter", "n": 3, "value": None, "at": "2026-03-02T10:00:00.250000",
         "tags": {"pos": 1}},
    ]  # fmt: skip
    assert set(RENDERERS) == {"table", "csv", "json"}
    with pytest.raises(ReportError, match="unknown format 'xml'"):
        render(RESULT, "xml")


def test_catalogue_lists_parameters() -> None:
    text = catalogue(load_queries())
    assert "ropo: Research online, purchase offline" in text
    assert "--param days=...  UInt32, default 7" in text
