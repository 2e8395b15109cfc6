"""The embedded ClickHouse server seen through clickhouse-connect and plain HTTP."""

from __future__ import annotations

import datetime as dt
import threading
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import DatabaseError

from omnijourney.settings import Settings
from sinks.clickhouse import client
from tests.plugins.clickhouse import http

pytestmark = pytest.mark.clickhouse

_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))

TYPED_COLUMNS = {
    "id": "UInt64",
    "i": "Int32",
    "f": "Float64",
    "s": "String",
    "lc": "LowCardinality(String)",
    "ts": "DateTime64(3, 'Europe/Paris')",
    "n": "Nullable(Int64)",
    "ns": "Nullable(String)",
    "arr": "Array(String)",
    "d": "Decimal(18, 4)",
}
CHANNELS = ["web", "app", "pos", "callcenter", "email"]
EPOCH = dt.datetime(2024, 3, 31, 0, 30, tzinfo=dt.UTC)  # spans the Paris DST change


def typed_rows(count: int) -> list[list[Any]]:
    """Rows of every column type of TYPED_COLUMNS, with edge values."""
    return [
        [
            i,
            (-1) ** i * i * 7919 % 2_147_483_647,
            i / 7 if i % 11 else float("inf"),
            f"s{i} é ✓" if i % 13 else "",
            CHANNELS[i % len(CHANNELS)],
            EPOCH + dt.timedelta(milliseconds=37 * i),
            None if i % 3 == 0 else i * 1_000_000_007,
            None if i % 4 == 0 else f"n{i}",
            [f"a{j}" for j in range(i % 4)],
            Decimal(i) / Decimal(8) - Decimal("1000.5"),
        ]
        for i in range(count)
    ]


def table(name: str) -> str:
    """A unique table name."""
    return f"{name}_{uuid.uuid4().hex[:8]}"


def create(ch: Client, name: str, columns: dict[str, str]) -> None:
    """Create a MergeTree table ordered by its first column."""
    cols = ", ".join(f"`{col}` {kind}" for col, kind in columns.items())
    first = next(iter(columns))
    ch.command(f"CREATE TABLE {name} ({cols}) ENGINE = MergeTree ORDER BY `{first}`")


@pytest.fixture
def fresh_client(clickhouse_settings: Settings, clickhouse_database: str) -> Iterator[Client]:
    """A client of its own (its own HTTP session), closed after the test."""
    connection = client(clickhouse_settings, database=clickhouse_database)
    yield connection
    connection.close()


# ---------------------------------------------------------------- basics


def test_ping_and_root_answer_ok(clickhouse_settings: Settings) -> None:
    for path in ("/ping", "/"):
        with _NO_PROXY.open(clickhouse_settings.clickhouse.url + path, timeout=5) as response:
            assert response.read() == b"Ok.\n"


def test_unknown_path_is_404(clickhouse_settings: Settings) -> None:
    with pytest.raises(urllib.error.HTTPError) as caught:
        _NO_PROXY.open(clickhouse_settings.clickhouse.url + "/nope", timeout=5)
    assert caught.value.code == 404


def test_server_identity_headers(clickhouse_settings: Settings) -> None:
    status, headers, body = http(clickhouse_settings, {"query": "SELECT 1", "query_id": "q-42"})
    assert (status, body) == (200, b"1\n")
    assert headers["X-ClickHouse-Query-Id"] == "q-42"
    assert headers["X-ClickHouse-Timezone"] == "Etc/UTC"
    assert headers["X-ClickHouse-Format"] == "TabSeparated"
    assert headers["X-ClickHouse-Server-Display-Name"]
    assert "read_rows" in headers["X-ClickHouse-Summary"]


def test_client_connects_and_sees_the_engine(clickhouse_client: Client) -> None:
    assert clickhouse_client.server_version
    assert clickhouse_client.command("SELECT 1 + 1") == 2
    assert clickhouse_client.command("SELECT currentDatabase()") == clickhouse_client.database


def test_ddl_roundtrip(clickhouse_client: Client) -> None:
    name = table("ddl")
    create(clickhouse_client, name, {"id": "UInt32", "label": "String"})
    clickhouse_client.command(f"ALTER TABLE {name} ADD COLUMN extra Nullable(Float32)")
    described = clickhouse_client.query(f"DESCRIBE TABLE {name}").result_rows
    assert [(row[0], row[1]) for row in described] == [
        ("id", "UInt32"),
        ("label", "String"),
        ("extra", "Nullable(Float32)"),
    ]
    clickhouse_client.command(f"DROP TABLE {name}")
    remaining = clickhouse_client.command(
        "SELECT count() FROM system.tables"
        " WHERE database = currentDatabase() AND name = {n:String}",
        parameters={"n": name},
    )
    assert remaining == 0


# ---------------------------------------------------------------- inserts


def test_insert_100k_typed_rows_reads_back_exactly(clickhouse_client: Client) -> None:
    name = table("typed")
    create(clickhouse_client, name, TYPED_COLUMNS)
    rows = typed_rows(100_000)
    summary = clickhouse_client.insert(name, rows, column_names=list(TYPED_COLUMNS))
    assert summary.written_rows == 100_000
    back = clickhouse_client.query(f"SELECT * FROM {name} ORDER BY id").result_rows
    assert len(back) == len(rows)
    for got, sent in zip(back, rows, strict=True):
        assert list(got) == sent
    assert back[1][5].utcoffset() in (dt.timedelta(hours=1), dt.timedelta(hours=2))


@pytest.mark.parametrize("compress", [False, "lz4", "zstd", "gzip"])
def test_insert_and_read_with_each_compression(
    clickhouse_settings: Settings, clickhouse_database: str, compress: str | bool
) -> None:
    ch = client(clickhouse_settings, database=clickhouse_database, compress=compress)
    try:
        name = table("comp")
        create(ch, name, TYPED_COLUMNS)
        rows = typed_rows(20_000)
        ch.insert(name, rows, column_names=list(TYPED_COLUMNS))
        back = ch.query(f"SELECT * FROM {name} ORDER BY id").result_rows
        assert [list(row) for row in back] == rows
    finally:
        ch.close()


def test_raw_insert_with_query_in_url_and_values(clickhouse_client: Client) -> None:
    name = table("raw")
    create(clickhouse_client, name, {"id": "UInt32", "s": "String"})
    clickhouse_client.raw_insert(name, ["id", "s"], "1\tone\n2\ttwo\n", fmt="TabSeparated")
    clickhouse_client.raw_insert(name, ["id", "s"], iter([b"3\tthree\n", b"4\tfour\n"]), fmt="TSV")
    clickhouse_client.command(f"INSERT INTO {name} VALUES (5, 'five'), (6, 'it''s')")
    rows = clickhouse_client.query(f"SELECT id, s FROM {name} ORDER BY id").result_rows
    assert rows == [(1, "one"), (2, "two"), (3, "three"), (4, "four"), (5, "five"), (6, "it's")]


def test_bad_insert_data_is_a_database_error_and_inserts_nothing(
    clickhouse_client: Client,
) -> None:
    name = table("badins")
    create(clickhouse_client, name, {"id": "UInt32"})
    with pytest.raises(DatabaseError) as caught:
        clickhouse_client.raw_insert(name, ["id"], "1\nnot a number\n", fmt="TSV")
    assert caught.value.code is not None and caught.value.code != 0
    assert clickhouse_client.command(f"SELECT count() FROM {name}") == 0


# ---------------------------------------------------------------- parameters and settings


def test_server_side_query_parameters(clickhouse_client: Client) -> None:
    result = clickhouse_client.query(
        "SELECT {n:UInt32} + 1, {s:String}, {a:Array(String)}",
        parameters={"n": 41, "s": "it's \\ \t ok", "a": ["x", "y'z"]},
    )
    assert result.result_rows == [(42, "it's \\ \t ok", ["x", "y'z"])]


def test_client_side_query_parameters(clickhouse_client: Client) -> None:
    result = clickhouse_client.query(
        "SELECT %(n)s + 1, %(s)s, %(d)s",
        parameters={"n": 41, "s": "it's", "d": dt.date(2024, 2, 29)},
    )
    assert result.result_rows == [(42, "it's", "2024-02-29")]


def test_large_parameters_go_through_a_form(clickhouse_client: Client) -> None:
    big = "x" * 20_000  # beyond clickhouse-connect's URL limit: sent as multipart form
    result = clickhouse_client.query("SELECT length({s:String})", parameters={"s": big})
    assert result.result_rows == [(20_000,)]


def test_settings_apply_to_their_query_only(clickhouse_client: Client) -> None:
    probe = "SELECT getSetting('max_block_size')"
    default = clickhouse_client.command(probe)
    assert clickhouse_client.command(probe, settings={"max_block_size": 1234}) == 1234
    assert clickhouse_client.command(probe) == default


def test_settings_do_not_leak_between_pooled_connections(
    clickhouse_settings: Settings, clickhouse_database: str
) -> None:
    ch = client(clickhouse_settings, database=clickhouse_database, autogenerate_session_id=False)
    try:
        probe = "SELECT getSetting('max_block_size')"
        default = ch.command(probe)
        assert ch.command(probe, settings={"max_block_size": 777}) == 777
        ch.command("SET max_block_size = 555")  # no session: must not outlive its request
        assert [ch.command(probe) for _ in range(5)] == [default] * 5
    finally:
        ch.close()


def test_set_statements_persist_in_a_session(fresh_client: Client) -> None:
    fresh_client.command("SET max_block_size = 4321")
    assert fresh_client.command("SELECT getSetting('max_block_size')") == 4321
    probe = "SELECT getSetting('max_block_size')"
    assert fresh_client.command(probe, settings={"max_block_size": 99}) == 99
    assert fresh_client.command(probe) == 4321


def test_temporary_tables_live_in_their_session(fresh_client: Client) -> None:
    fresh_client.command("CREATE TEMPORARY TABLE tmp_t (a UInt8)")
    fresh_client.command("INSERT INTO tmp_t VALUES (1), (2)")
    assert fresh_client.command("SELECT sum(a) FROM tmp_t") == 3


def test_max_result_rows_is_enforced(clickhouse_client: Client) -> None:
    with pytest.raises(DatabaseError) as caught:
        clickhouse_client.query(
            "SELECT number FROM numbers(100)",
            settings={"max_result_rows": 10, "result_overflow_mode": "throw"},
        )
    assert caught.value.code == 396


def test_unknown_setting_is_refused(clickhouse_client: Client) -> None:
    with pytest.raises(DatabaseError) as caught:
        clickhouse_client.query("SELECT 1", settings={"no_such_setting_xyz": 1})
    assert caught.value.code == 115 and "no_such_setting_xyz" in str(caught.value)


def test_database_parameter_selects_the_database(
    clickhouse_settings: Settings, clickhouse_client: Client
) -> None:
    other = f"other_{uuid.uuid4().hex[:8]}"
    clickhouse_client.command(f"CREATE DATABASE {other}")
    try:
        ch = client(clickhouse_settings, database=other)
        assert ch.command("SELECT currentDatabase()") == other
        ch.close()
        status, _, body = http(
            clickhouse_settings, {"query": "SELECT currentDatabase()", "database": other}
        )
        assert (status, body) == (200, f"{other}\n".encode())
    finally:
        clickhouse_client.command(f"DROP DATABASE {other}")


def test_default_format_and_explicit_format(clickhouse_settings: Settings) -> None:
    status, headers, body = http(
        clickhouse_settings, {"query": "SELECT 1 AS x", "default_format": "JSONEachRow"}
    )
    assert (status, body) == (200, b'{"x":1}\n')
    assert headers["X-ClickHouse-Format"] == "JSONEachRow"
    status, headers, body = http(clickhouse_settings, {}, b"SELECT 2 AS y FORMAT CSVWithNames")
    assert (status, body) == (200, b'"y"\n2\n')
    assert headers["X-ClickHouse-Format"] == "CSVWithNames"


def test_compressed_response_when_asked(clickhouse_settings: Settings) -> None:
    status, headers, body = http(
        clickhouse_settings,
        {"query": "SELECT number FROM numbers(1000)", "enable_http_compression": "1"},
        headers={"Accept-Encoding": "gzip"},
    )
    assert status == 200 and headers["Content-Encoding"] == "gzip"
    import gzip

    assert gzip.decompress(body).splitlines()[-1] == b"999"


# ---------------------------------------------------------------- errors


def test_bad_query_raises_database_error_with_the_server_message(
    clickhouse_client: Client,
) -> None:
    with pytest.raises(DatabaseError) as caught:
        clickhouse_client.query("SELECT * FROM table_that_does_not_exist")
    assert caught.value.code == 60 and caught.value.name == "UNKNOWN_TABLE"
    assert "Code: 60. DB::Exception:" in str(caught.value)
    assert "table_that_does_not_exist" in str(caught.value)
    with pytest.raises(DatabaseError) as caught:
        clickhouse_client.command("SELEC 1")
    assert caught.value.code == 62 and "Syntax error" in str(caught.value)


@pytest.mark.parametrize(
    ("query", "status", "code"),
    [
        ("SELECT * FROM no_such_table_q", 404, "60"),
        ("SELEC 1", 400, "62"),
        ("SELECT throwIf(1)", 500, "395"),
        ("SELECT 1 INTO OUTFILE '/tmp/omnijourney-should-not-exist'", 500, "358"),
    ],
)
def test_errors_carry_the_real_status_and_code(
    clickhouse_settings: Settings, query: str, status: int, code: str
) -> None:
    got, headers, body = http(clickhouse_settings, {}, query.encode())
    assert (got, headers["X-ClickHouse-Exception-Code"]) == (status, code)
    assert body.startswith(f"Code: {code}. DB::Exception: ".encode())


def test_get_implies_readonly(clickhouse_settings: Settings, clickhouse_database: str) -> None:
    status, headers, body = http(
        clickhouse_settings,
        {"query": f"CREATE TABLE {clickhouse_database}.get_t (a Int8) ENGINE = Memory"},
    )
    assert (status, headers["X-ClickHouse-Exception-Code"]) == (500, "164")
    assert b"GET implies readonly" in body


def test_readonly_setting_refuses_writes(clickhouse_client: Client) -> None:
    with pytest.raises(DatabaseError) as caught:
        clickhouse_client.command(
            "CREATE TABLE ro_t (a Int8) ENGINE = Memory", settings={"readonly": 1}
        )
    assert caught.value.code == 164


def test_session_check_and_session_lock(clickhouse_settings: Settings) -> None:
    status, headers, _ = http(
        clickhouse_settings,
        {"query": "SELECT 1", "session_id": uuid.uuid4().hex, "session_check": "1"},
    )
    assert (status, headers["X-ClickHouse-Exception-Code"]) == (500, "372")


# ---------------------------------------------------------------- concurrency


def test_reads_are_answered_while_an_insert_runs(
    clickhouse_settings: Settings, clickhouse_database: str, clickhouse_client: Client
) -> None:
    name = table("slowins")
    create(clickhouse_client, name, {"id": "UInt64", "s": "String"})
    writer = client(clickhouse_settings, database=clickhouse_database)
    reader = client(clickhouse_settings, database=clickhouse_database)
    first_sent, reads_done = threading.Event(), threading.Event()
    outcome: dict[str, Any] = {}

    def body() -> Iterator[bytes]:
        yield "".join(f"{i}\tv{i}\n" for i in range(50_000)).encode()
        first_sent.set()
        # The insert request stays open until the reader got its answers.
        outcome["reads_done_in_time"] = reads_done.wait(timeout=60)
        yield "".join(f"{i}\tv{i}\n" for i in range(50_000, 100_000)).encode()

    def insert() -> None:
        try:
            outcome["summary"] = writer.raw_insert(name, ["id", "s"], body(), fmt="TSV")
        except Exception as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=insert)
    thread.start()
    try:
        assert first_sent.wait(timeout=60)
        answers = [reader.command(f"SELECT {i} * 2") for i in range(20)]
        counts = reader.query("SELECT count() FROM numbers(123456)").result_rows
        status, _, _ = http(
            clickhouse_settings,
            {"query": "SELECT 1", "session_id": writer.get_client_setting("session_id") or ""},
        )
    finally:
        reads_done.set()
        thread.join(timeout=120)
    assert answers == [i * 2 for i in range(20)] and counts == [(123456,)]
    assert status == 500  # the insert's own session is locked meanwhile (SESSION_IS_LOCKED)
    assert outcome.get("reads_done_in_time") is True, outcome.get("error")
    assert clickhouse_client.command(f"SELECT count(), uniqExact(s) FROM {name}") == [
        "100000",
        "100000",
    ]
    writer.close()
    reader.close()


def test_several_clients_at_once(clickhouse_settings: Settings, clickhouse_database: str) -> None:
    name = table("multi")
    admin = client(clickhouse_settings, database=clickhouse_database)
    create(admin, name, {"worker": "UInt8", "n": "UInt32"})
    errors: list[BaseException] = []

    def work(worker: int) -> None:
        ch = client(clickhouse_settings, database=clickhouse_database)
        try:
            for batch in range(5):
                ch.insert(name, [[worker, batch * 1000 + i] for i in range(1000)])
                got = ch.query("SELECT {w:UInt8} * 10", parameters={"w": worker}).result_rows
                assert got == [(worker * 10,)]
        except BaseException as exc:
            errors.append(exc)
        finally:
            ch.close()

    threads = [threading.Thread(target=work, args=(w,)) for w in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    per_worker = admin.query(
        f"SELECT worker, count(), uniqExact(n) FROM {name} GROUP BY worker ORDER BY worker"
    ).result_rows
    assert per_worker == [(w, 5000, 5000) for w in range(6)]
    admin.close()
