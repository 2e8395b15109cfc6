"""The pure ClickHouse HTTP protocol helpers of the embedded server."""

from __future__ import annotations

import base64
import gzip
import json
import zlib

import lz4.frame
import pytest
import zstandard
from hypothesis import given
from hypothesis import strategies as st

from omnijourney.exceptions import ClickHouseQueryError
from omnijourney.local import chprotocol as proto

# ---------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("code", "status"),
    [
        (60, 404),  # UNKNOWN_TABLE
        (81, 404),  # UNKNOWN_DATABASE
        (115, 404),  # UNKNOWN_SETTING
        (62, 400),  # SYNTAX_ERROR
        (53, 400),  # TYPE_MISMATCH
        (516, 403),  # AUTHENTICATION_FAILED
        (194, 401),  # REQUIRED_PASSWORD
        (229, 413),  # QUERY_IS_TOO_LARGE
        (48, 501),  # NOT_IMPLEMENTED
        (159, 408),  # TIMEOUT_EXCEEDED
        (395, 500),  # FUNCTION_THROW_IF_VALUE_IS_NON_ZERO: no special status
        (1002, 500),
    ],
)
def test_http_status_follows_the_real_server(code: int, status: int) -> None:
    assert proto.http_status(code) == status


def test_engine_error_parses_code_name_and_message() -> None:
    exc = proto.engine_error(
        "Code: 60. DB::Exception: Unknown table expression identifier 'x'. "
        "In scope SELECT * FROM x. (UNKNOWN_TABLE)"
    )
    assert (exc.code, exc.name) == (60, "UNKNOWN_TABLE")
    assert exc.message == "Unknown table expression identifier 'x'. In scope SELECT * FROM x"


def test_engine_error_unwraps_a_doubled_message_and_version_trailer() -> None:
    exc = proto.engine_error(
        "Streaming insert finish failed: Code: 108. DB::Exception: Code: 108. DB::Exception: "
        "No data to insert. (NO_DATA_TO_INSERT) (version 26.9.2.1). (NO_DATA_TO_INSERT)"
    )
    assert (exc.code, exc.name, exc.message) == (108, "NO_DATA_TO_INSERT", "No data to insert")


def test_engine_error_without_a_code_is_an_unknown_exception() -> None:
    exc = proto.engine_error("Cannot append to a finished insert stream")
    assert (exc.code, exc.name) == (1002, "UNKNOWN_EXCEPTION")
    assert exc.message == "Cannot append to a finished insert stream"


def test_error_body_has_the_real_server_shape() -> None:
    exc = ClickHouseQueryError(62, "SYNTAX_ERROR", "Syntax error: failed at position 1")
    assert proto.error_body(exc, "26.9.2.1") == (
        "Code: 62. DB::Exception: Syntax error: failed at position 1. (SYNTAX_ERROR) "
        "(version 26.9.2.1)\n"
    )


# ---------------------------------------------------------------- request parameters


def test_parse_request_splits_settings_params_and_reserved_names() -> None:
    req = proto.parse_request(
        [
            ("query", "SELECT {x:UInt8}"),
            ("database", "db1"),
            ("default_format", "JSON"),
            ("query_id", "q1"),
            ("session_id", "s1"),
            ("session_timeout", "120"),
            ("param_x", "7"),
            ("max_result_rows", "10"),
            ("wait_end_of_query", "1"),
            ("enable_http_compression", "1"),
            ("send_progress_in_http_headers", "1"),
            ("user", "u"),
            ("password", "p"),
            ("client_protocol_version", "54405"),
            ("", "ignored"),
        ],
        max_session_timeout=3600,
    )
    assert req.query == "SELECT {x:UInt8}"
    assert req.database == "db1"
    assert req.default_format == "JSON"
    assert (req.query_id, req.session_id, req.session_timeout) == ("q1", "s1", 120.0)
    assert req.params == {"x": "7"}
    assert req.settings == {"max_result_rows": "10"}
    assert req.http_compression is True
    assert req.readonly == 0


def test_parse_request_defaults() -> None:
    req = proto.parse_request([], max_session_timeout=3600)
    assert req.default_format == "TabSeparated"
    assert req.database is None and req.session_id is None and req.http_compression is None


def test_get_requests_are_readonly_two() -> None:
    assert proto.parse_request([], 3600, method="GET").readonly == 2
    assert proto.parse_request([("readonly", "1")], 3600, method="GET").readonly == 1


@pytest.mark.parametrize("value", ["abc", "7200"])
def test_bad_session_timeout_is_refused(value: str) -> None:
    with pytest.raises(ClickHouseQueryError) as caught:
        proto.parse_request([("session_timeout", value)], max_session_timeout=3600)
    assert caught.value.name == "INVALID_SESSION_TIMEOUT"


def test_native_block_compression_is_refused_clearly() -> None:
    with pytest.raises(ClickHouseQueryError) as caught:
        proto.parse_request([("compress", "1")], max_session_timeout=3600)
    assert caught.value.name == "NOT_IMPLEMENTED" and "compress" in caught.value.message


# ---------------------------------------------------------------- authentication


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_credentials_from_basic_auth_headers_and_url() -> None:
    assert proto.credentials({"Authorization": _basic("u", "p:q")}, {}) == proto.Credentials(
        "u", "p:q"
    )
    headers = {"X-ClickHouse-User": "u2", "X-ClickHouse-Key": "k"}
    assert proto.credentials(headers, {}) == proto.Credentials("u2", "k")
    assert proto.credentials({}, {"user": "u3", "password": "w"}) == proto.Credentials("u3", "w")
    assert proto.credentials({}, {}) == proto.Credentials("default", "")


def test_check_credentials() -> None:
    proto.check_credentials(proto.Credentials("default", "secret"), "default", "secret")
    proto.check_credentials(proto.Credentials("anyone", ""), "default", "")  # no password set
    for wrong in (proto.Credentials("default", "nope"), proto.Credentials("other", "secret")):
        with pytest.raises(ClickHouseQueryError) as caught:
            proto.check_credentials(wrong, "default", "secret")
        assert (caught.value.code, caught.value.name) == (516, "AUTHENTICATION_FAILED")
        assert "Authentication failed" in caught.value.message


# ---------------------------------------------------------------- statements

NATIVE = b"\x02\x01\x01a\x06UInt64"


def test_insert_format_head_and_data_offset() -> None:
    buf = b"INSERT INTO db.t (`a`, `b`) FORMAT Native\n" + NATIVE
    statement = proto.scan_statement(buf, final=True)
    assert statement.kind == "INSERT" and statement.has_inline_data
    assert statement.insert_head == "INSERT INTO db.t (`a`, `b`)"
    assert statement.insert_format == "Native"
    assert buf[statement.data_offset :] == NATIVE


def test_insert_data_after_crlf_or_on_the_same_line() -> None:
    buf = b"insert into t format CSV \r\n1,2\n"
    assert buf[proto.scan_statement(buf, True).data_offset :] == b"1,2\n"
    same_line = b"INSERT INTO t FORMAT CSV 1,2"
    assert same_line[proto.scan_statement(same_line, True).data_offset :] == b"1,2"


def test_insert_values_streams_the_values() -> None:
    buf = b"/* c */ INSERT INTO t (a) SETTINGS async_insert = 0 VALUES (1), ('x')"
    statement = proto.scan_statement(buf, final=True)
    assert statement.insert_head == "/* c */ INSERT INTO t (a) SETTINGS async_insert = 0"
    assert statement.insert_format == "Values"
    assert buf[statement.data_offset :] == b" (1), ('x')"


def test_insert_select_has_no_inline_data() -> None:
    statement = proto.scan_statement(b"INSERT INTO t SELECT 'FORMAT' FROM s FORMAT", True)
    assert statement.kind == "INSERT" and not statement.has_inline_data


def test_keywords_inside_strings_comments_and_parens_are_ignored() -> None:
    buf = (
        b"INSERT INTO t -- FORMAT CSV\n SETTINGS insert_deduplication_token = 'FORMAT x VALUES' "
        b"/* VALUES */ FORMAT TSV\n1\n"
    )
    statement = proto.scan_statement(buf, final=True)
    assert statement.insert_format == "TSV"
    assert buf[statement.data_offset :] == b"1\n"


def test_partial_heads_ask_for_more_data() -> None:
    for partial in (
        b"INSERT INTO t FORMAT Nat",
        b"INSERT INTO t FORMAT Native",
        b"INSERT INTO t SETTINGS x = 'unfinished",
        b"INSERT INTO t /* open comment",
        b"INSERT INTO t",
        b"SELECT 1",
    ):
        with pytest.raises(proto.NeedMoreData):
            proto.scan_statement(partial, final=False)
    with pytest.raises(proto.NeedMoreData):
        proto.statement_kind(b"  -- only a comment", final=False)


@given(st.integers(min_value=0, max_value=60))
def test_any_prefix_of_an_insert_either_waits_or_agrees(cut: int) -> None:
    buf = b"INSERT INTO t (`a`) SETTINGS x = 'a;b' FORMAT RowBinary\n" + b"\x01\x00\x02"
    full = proto.scan_statement(buf, final=True)
    try:
        partial = proto.scan_statement(buf[:cut], final=False)
    except proto.NeedMoreData:
        return
    assert partial == full


def test_output_statements_and_their_format() -> None:
    select = proto.scan_statement(b"SELECT 1 FORMAT JSONEachRow SETTINGS max_threads = 1", True)
    assert select.produces_output and select.output_format == "JSONEachRow"
    assert proto.scan_statement(b"SELECT format FROM t", True).output_format is None
    assert proto.scan_statement(b"(SELECT 1)", True).produces_output
    assert not proto.scan_statement(
        b"CREATE TABLE t (a Int8) ENGINE = Memory", True
    ).produces_output


def test_stateful_statements() -> None:
    assert proto.scan_statement(b"SET max_threads = 1", True).stateful
    assert proto.scan_statement(b"use db", True).stateful
    assert proto.scan_statement(b"CREATE TEMPORARY TABLE x (a Int8)", True).stateful
    assert not proto.scan_statement(b"CREATE TABLE x (a Int8) ENGINE = Memory", True).stateful


def test_local_files_are_refused_like_the_real_server() -> None:
    with pytest.raises(ClickHouseQueryError) as caught:
        proto.scan_statement(b"SELECT 1 INTO OUTFILE '/tmp/x'", True)
    assert caught.value.name == "INTO_OUTFILE_NOT_ALLOWED"
    with pytest.raises(ClickHouseQueryError) as caught:
        proto.scan_statement(b"INSERT INTO t FROM INFILE '/etc/passwd' FORMAT CSV", True)
    assert caught.value.name == "UNKNOWN_TYPE_OF_QUERY"


def test_check_readonly() -> None:
    select = proto.scan_statement(b"SELECT 1", True)
    insert = proto.scan_statement(b"INSERT INTO t VALUES (1)", True)
    setting = proto.scan_statement(b"SET a = 1", True)
    proto.check_readonly(select, 1, via_get=False)
    proto.check_readonly(insert, 0, via_get=False)
    proto.check_readonly(setting, 2, via_get=True)
    with pytest.raises(ClickHouseQueryError) as caught:
        proto.check_readonly(insert, 2, via_get=True)
    assert caught.value.code == 164 and "GET implies readonly" in caught.value.message
    with pytest.raises(ClickHouseQueryError):
        proto.check_readonly(setting, 1, via_get=False)


# ---------------------------------------------------------------- codecs

PAYLOAD = [b"first block " * 500, b"second", b"third block " * 3000]


def _lz4_frames(parts: list[bytes]) -> bytes:
    return b"".join(lz4.frame.compress(part) for part in parts)


def _zstd_frames(parts: list[bytes]) -> bytes:
    return b"".join(zstandard.ZstdCompressor().compress(part) for part in parts)


def _gzip_members(parts: list[bytes]) -> bytes:
    return b"".join(gzip.compress(part) for part in parts)


@pytest.mark.parametrize(
    ("encoding", "encode"),
    [
        ("lz4", _lz4_frames),
        ("zstd", _zstd_frames),
        ("gzip", _gzip_members),
        ("deflate", lambda parts: zlib.compress(b"".join(parts))),
        (None, b"".join),
    ],
)
@given(step=st.integers(min_value=1, max_value=5000))
def test_decoders_accept_any_chunking_of_concatenated_frames(
    encoding: str | None, encode: object, step: int
) -> None:
    body = encode(PAYLOAD)  # type: ignore[operator]
    decoder = proto.body_decoder(encoding)
    out = b"".join(decoder.feed(body[i : i + step]) for i in range(0, len(body), step))
    assert out + decoder.finish() == b"".join(PAYLOAD)


@pytest.mark.parametrize(("encoding", "encode"), [("lz4", _lz4_frames), ("gzip", _gzip_members)])
def test_truncated_bodies_are_reported(encoding: str, encode: object) -> None:
    body = encode(PAYLOAD)  # type: ignore[operator]
    decoder = proto.body_decoder(encoding)
    decoder.feed(body[:-5])
    with pytest.raises(ClickHouseQueryError) as caught:
        decoder.finish()
    assert caught.value.name == "CANNOT_DECOMPRESS"


def test_garbage_and_unknown_encodings_are_reported() -> None:
    with pytest.raises(ClickHouseQueryError) as caught:
        proto.body_decoder("zstd").feed(b"not zstd at all")
    assert caught.value.code == 271
    with pytest.raises(ClickHouseQueryError) as caught:
        proto.body_decoder("snappy-ish")
    assert (caught.value.code, caught.value.name) == (89, "UNKNOWN_COMPRESSION_METHOD")


def test_response_encoding_follows_the_client_and_the_setting() -> None:
    assert proto.response_encoding("lz4,zstd,gzip,deflate", True) == "lz4"
    assert proto.response_encoding("br, gzip;q=0.9", True) == "gzip"
    assert proto.response_encoding("gzip", False) is None
    assert proto.response_encoding(None, True) is None
    assert proto.response_encoding("br", True) is None


@pytest.mark.parametrize("encoding", ["lz4", "zstd", "gzip", "deflate"])
def test_encoded_responses_decode_back(encoding: str) -> None:
    data = b"".join(PAYLOAD)
    encoded = proto.encode_body(data, encoding)
    decoder = proto.body_decoder(encoding)
    assert decoder.feed(encoded) + decoder.finish() == data


# ---------------------------------------------------------------- small helpers


def test_settings_statement_quotes_values_and_restores_defaults() -> None:
    statement = proto.settings_statement({"max_threads": "2", "a_b": "it's \\", "x": None})
    assert statement == "SET max_threads = '2', a_b = 'it\\'s \\\\', x = DEFAULT"


def test_setting_names_cannot_smuggle_sql() -> None:
    with pytest.raises(ClickHouseQueryError) as caught:
        proto.settings_statement({"max_threads = 1; DROP TABLE t; --": "1"})
    assert caught.value.name == "UNKNOWN_SETTING"


def test_content_types() -> None:
    assert proto.content_type("Native") == "application/octet-stream"
    assert proto.content_type("TabSeparated").startswith("text/tab-separated-values")
    assert proto.content_type("JSONEachRow").startswith("application/json")
    assert proto.content_type("CSVWithNames").endswith("header=present")


def test_summary_header_is_json_of_strings() -> None:
    header = json.loads(proto.Summary(written_rows=3, written_bytes=24, elapsed_ns=5).header())
    assert header["written_rows"] == "3" and header["written_bytes"] == "24"
    assert all(isinstance(value, str) for value in header.values())
