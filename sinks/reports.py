"""Saved queries (`sinks/queries/*.sql`) and ad-hoc SQL, run and rendered as table, CSV or JSON.

A saved query is one SQL file. Its leading `--` lines document it: the first is the title,
lines `-- param NAME TYPE = DEFAULT: doc` declare the parameters it uses as `{NAME:TYPE}`
(bound by the server, never pasted into the SQL), the others describe it. Renderers are a
registry by format name, so other outputs (an HTML report) plug in next to these.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from ipaddress import IPv4Address, IPv6Address
from pathlib import Path
from typing import Any, Final
from uuid import UUID

from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError

from omnijourney.exceptions import ReportError

QUERY_DIR: Final = Path(__file__).parent / "queries"
_PARAM: Final = re.compile(r"^--\s*param\s+(\w+)\s+(.+?)\s*=\s*(.*?):\s+(.*)$")
_NAME: Final = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclass(frozen=True)
class Param:
    """A parameter of a saved query."""

    name: str
    type: str
    default: str
    doc: str


@dataclass(frozen=True)
class SavedQuery:
    """One saved query: its SQL, what it answers and its parameters."""

    name: str
    title: str
    description: str
    params: tuple[Param, ...]
    sql: str


@dataclass(frozen=True)
class Result:
    """Column names and rows of an answer."""

    columns: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]


def parse_query(name: str, text: str) -> SavedQuery:
    """A saved query from the text of its file."""
    header: list[str] = []
    lines = text.splitlines()
    for line in lines:
        if not line.startswith("--"):
            break
        header.append(line)
    params: list[Param] = []
    notes: list[str] = []
    for line in header:
        match = _PARAM.match(line)
        if match:
            default = "" if match.group(3) == "''" else match.group(3)
            params.append(Param(match.group(1), match.group(2), default, match.group(4)))
        else:
            notes.append(line.removeprefix("--").strip())
    if not notes:
        raise ReportError(f"saved query {name!r} has no title line")
    sql = "\n".join(lines[len(header) :]).strip()
    for param in params:
        if f"{{{param.name}:" not in sql:
            raise ReportError(f"saved query {name!r} declares {param.name!r} but never uses it")
    return SavedQuery(name, notes[0], " ".join(notes[1:]), tuple(params), sql)


def load_queries(directory: Path = QUERY_DIR) -> dict[str, SavedQuery]:
    """Every saved query by name (the file name without .sql)."""
    queries: dict[str, SavedQuery] = {}
    for path in sorted(directory.glob("*.sql")):
        if not _NAME.match(path.stem):
            raise ReportError(f"{path.name}: saved query names are lower_snake_case")
        queries[path.stem] = parse_query(path.stem, path.read_text(encoding="utf-8"))
    return queries


def saved_query(name: str, directory: Path = QUERY_DIR) -> SavedQuery:
    """The saved query called `name`."""
    queries = load_queries(directory)
    if name not in queries:
        raise ReportError(f"no report {name!r}; known: {', '.join(sorted(queries))}")
    return queries[name]


def parse_params(pairs: Sequence[str]) -> dict[str, str]:
    """`name=value` pairs of the command line as a dict."""
    params: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise ReportError(f"parameter {pair!r}: expected name=value")
        params[name.strip()] = value
    return params


def bind(query: SavedQuery, given: Mapping[str, str]) -> dict[str, str]:
    """Every parameter of the query: given values over defaults; unknown names refused."""
    known = {param.name: param.default for param in query.params}
    unknown = sorted(set(given) - set(known))
    if unknown:
        names = ", ".join(sorted(known)) or "none"
        raise ReportError(
            f"report {query.name!r} has no parameter {', '.join(unknown)} (parameters: {names})"
        )
    return {**known, **given}


def run_sql(conn: Client, sql: str, params: Mapping[str, str] | None = None) -> Result:
    """Run any SQL; its columns and rows (statements without output give none)."""
    try:
        answer = conn.query(sql, parameters=dict(params) if params else None)
    except ClickHouseError as exc:
        raise ReportError(_short(str(exc))) from None
    return Result(tuple(answer.column_names), tuple(tuple(row) for row in answer.result_rows))


def run_report(conn: Client, query: SavedQuery, given: Mapping[str, str] | None = None) -> Result:
    """Run a saved query with its parameters."""
    return run_sql(conn, query.sql, bind(query, given or {}))


def _short(message: str) -> str:
    """The ClickHouse error without clickhouse-connect's wrapping and the stack trace."""
    text = message.split("server response: ", 1)[-1]
    return text.split(" (for url ", 1)[0].strip()


# ------------------------------------------------------------ rendering


def plain(value: Any) -> Any:
    """A JSON-ready value: times as ISO text, decimals as text, containers recursively."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return format(value.normalize(), "f")
    if isinstance(value, UUID | IPv4Address | IPv6Address):
        return str(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, dict):
        return {str(plain(k)): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(item) for item in value]
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def text(value: Any) -> str:
    """A value as one line of text (tables and CSV)."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S") + (
            f".{value.microsecond:06d}".rstrip("0") if value.microsecond else ""
        )
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.6g}"
    shown = plain(value)
    if isinstance(shown, dict | list):
        return json.dumps(shown, ensure_ascii=False, separators=(",", ":"))
    return str(shown)


def _numeric(values: list[Any]) -> bool:
    present = [v for v in values if v is not None]
    return bool(present) and all(
        isinstance(v, int | float | Decimal) and not isinstance(v, bool) for v in present
    )


def render_table(result: Result, max_width: int = 60) -> str:
    """An aligned text table; numbers right-aligned, long cells cut with an ellipsis."""
    if not result.columns:
        return "(no rows)\n"
    cells = [
        [c if len(c) <= max_width else c[: max_width - 1] + "…" for c in map(text, row)]
        for row in result.rows
    ]
    widths = [
        max([len(name)] + [len(row[i]) for row in cells]) for i, name in enumerate(result.columns)
    ]
    numeric = [_numeric([row[i] for row in result.rows]) for i in range(len(result.columns))]

    def line(values: Sequence[str]) -> str:
        parts = [
            v.rjust(w) if num else v.ljust(w)
            for v, w, num in zip(values, widths, numeric, strict=True)
        ]
        return "  ".join(parts).rstrip()

    out = [line(result.columns), line(["-" * w for w in widths])]
    out.extend(line(row) for row in cells)
    count = len(result.rows)
    out.append(f"({count} row{'s' if count != 1 else ''})")
    return "\n".join(out) + "\n"


def render_csv(result: Result) -> str:
    """CSV with a header row."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(result.columns)
    writer.writerows([text(v) for v in row] for row in result.rows)
    return buffer.getvalue()


def render_json(result: Result) -> str:
    """A JSON array of objects, one per row."""
    rows = [
        {name: plain(value) for name, value in zip(result.columns, row, strict=True)}
        for row in result.rows
    ]
    return json.dumps(rows, ensure_ascii=False, indent=2) + "\n"


RENDERERS: Final[dict[str, Callable[[Result], str]]] = {
    "table": render_table,
    "csv": render_csv,
    "json": render_json,
}
"""Output formats by name."""


def render(result: Result, fmt: str) -> str:
    """The result in the named format."""
    if fmt not in RENDERERS:
        raise ReportError(f"unknown format {fmt!r}; known: {', '.join(RENDERERS)}")
    return RENDERERS[fmt](result)


def catalogue(queries: Mapping[str, SavedQuery]) -> str:
    """The list of saved queries with their parameters, for `report --list`."""
    out: list[str] = []
    for query in queries.values():
        out.append(f"{query.name}: {query.title}")
        for param in query.params:
            default = param.default if param.default else "''"
            out.append(
                f"    --param {param.name}=...  {param.type}, default {default}: {param.doc}"
            )
    return "\n".join(out) + "\n"
