"""The ClickHouse HTTP protocol as pure functions: request parsing, SQL heads, codecs, errors."""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import re
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

import lz4.frame
import zstandard

from omnijourney.exceptions import ClickHouseQueryError

# Error codes of ClickHouse (src/Common/ErrorCodes.cpp) that the embedded server raises itself
# or maps to an HTTP status.
ERROR_CODES: dict[str, int] = {
    "CANNOT_PARSE_TEXT": 6,
    "THERE_IS_NO_COLUMN": 8,
    "DUPLICATE_COLUMN": 15,
    "CANNOT_PARSE_ESCAPE_SEQUENCE": 25,
    "CANNOT_PARSE_QUOTED_STRING": 26,
    "CANNOT_PARSE_INPUT_ASSERTION_FAILED": 27,
    "BAD_ARGUMENTS": 36,
    "UNKNOWN_ELEMENT_IN_AST": 37,
    "CANNOT_PARSE_DATE": 38,
    "CANNOT_PARSE_DATETIME": 41,
    "ILLEGAL_COLUMN": 44,
    "UNKNOWN_FUNCTION": 46,
    "UNKNOWN_IDENTIFIER": 47,
    "NOT_IMPLEMENTED": 48,
    "UNKNOWN_TYPE": 50,
    "TYPE_MISMATCH": 53,
    "UNKNOWN_STORAGE": 56,
    "UNKNOWN_TABLE": 60,
    "SYNTAX_ERROR": 62,
    "UNKNOWN_AGGREGATE_FUNCTION": 63,
    "CANNOT_PARSE_NUMBER": 72,
    "UNKNOWN_FORMAT": 73,
    "CANNOT_OPEN_FILE": 76,
    "UNKNOWN_TYPE_OF_QUERY": 78,
    "UNKNOWN_DATABASE": 81,
    "UNKNOWN_COMPRESSION_METHOD": 89,
    "UNKNOWN_SETTING": 115,
    "INCORRECT_DATA": 117,
    "UNKNOWN_TYPE_OF_AST_NODE": 123,
    "UNKNOWN_DIRECTION_OF_SORTING": 152,
    "TIMEOUT_EXCEEDED": 159,
    "READONLY": 164,
    "TOO_DEEP_AST": 167,
    "TOO_BIG_AST": 168,
    "UNKNOWN_USER": 192,
    "WRONG_PASSWORD": 193,
    "REQUIRED_PASSWORD": 194,
    "SOCKET_TIMEOUT": 209,
    "UNEXPECTED_AST_STRUCTURE": 223,
    "QUERY_IS_TOO_LARGE": 229,
    "CANNOT_DECOMPRESS": 271,
    "VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE": 321,
    "UNKNOWN_DATABASE_ENGINE": 336,
    "INTO_OUTFILE_NOT_ALLOWED": 358,
    "SESSION_NOT_FOUND": 372,
    "SESSION_IS_LOCKED": 373,
    "INVALID_SESSION_TIMEOUT": 374,
    "CANNOT_PARSE_UUID": 376,
    "HTTP_LENGTH_REQUIRED": 381,
    "CANNOT_COMPILE_REGEXP": 427,
    "CANNOT_SCHEDULE_TASK": 439,
    "CANNOT_PARSE_DOMAIN_VALUE_FROM_STRING": 441,
    "ACCESS_DENIED": 497,
    "UNKNOWN_ROLE": 511,
    "SET_NON_GRANTED_ROLE": 512,
    "AUTHENTICATION_FAILED": 516,
    "CANNOT_PARSE_IPV4": 675,
    "CANNOT_PARSE_IPV6": 676,
    "UNSUPPORTED_MEDIA_TYPE": 779,
    "UNKNOWN_EXCEPTION": 1002,
}
_NAMES_BY_CODE = {code: name for name, code in ERROR_CODES.items()}

# exceptionCodeToHTTPStatus of the real server (src/Server/HTTP/exceptionCodeToHTTPStatus.cpp).
_STATUS_GROUPS: tuple[tuple[int, frozenset[str]], ...] = (
    (401, frozenset({"REQUIRED_PASSWORD"})),
    (
        403,
        frozenset(
            {
                "UNKNOWN_USER",
                "WRONG_PASSWORD",
                "AUTHENTICATION_FAILED",
                "SET_NON_GRANTED_ROLE",
                "ACCESS_DENIED",
            }
        ),
    ),
    (
        400,
        frozenset(
            {
                "BAD_ARGUMENTS",
                "CANNOT_COMPILE_REGEXP",
                "CANNOT_PARSE_TEXT",
                "CANNOT_PARSE_ESCAPE_SEQUENCE",
                "CANNOT_PARSE_QUOTED_STRING",
                "CANNOT_PARSE_DATE",
                "CANNOT_PARSE_DATETIME",
                "CANNOT_PARSE_NUMBER",
                "CANNOT_PARSE_DOMAIN_VALUE_FROM_STRING",
                "CANNOT_PARSE_IPV4",
                "CANNOT_PARSE_IPV6",
                "CANNOT_PARSE_INPUT_ASSERTION_FAILED",
                "CANNOT_PARSE_UUID",
                "DUPLICATE_COLUMN",
                "ILLEGAL_COLUMN",
                "UNKNOWN_ELEMENT_IN_AST",
                "UNKNOWN_TYPE_OF_AST_NODE",
                "THERE_IS_NO_COLUMN",
                "TOO_DEEP_AST",
                "TOO_BIG_AST",
                "UNEXPECTED_AST_STRUCTURE",
                "SYNTAX_ERROR",
                "INCORRECT_DATA",
                "TYPE_MISMATCH",
                "VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE",
            }
        ),
    ),
    (
        404,
        frozenset(
            {
                "UNKNOWN_TABLE",
                "UNKNOWN_FUNCTION",
                "UNKNOWN_IDENTIFIER",
                "UNKNOWN_TYPE",
                "UNKNOWN_STORAGE",
                "UNKNOWN_DATABASE",
                "UNKNOWN_SETTING",
                "UNKNOWN_DIRECTION_OF_SORTING",
                "UNKNOWN_AGGREGATE_FUNCTION",
                "UNKNOWN_FORMAT",
                "UNKNOWN_DATABASE_ENGINE",
                "UNKNOWN_TYPE_OF_QUERY",
                "UNKNOWN_ROLE",
            }
        ),
    ),
    (413, frozenset({"QUERY_IS_TOO_LARGE"})),
    (501, frozenset({"NOT_IMPLEMENTED"})),
    (503, frozenset({"SOCKET_TIMEOUT", "CANNOT_OPEN_FILE", "CANNOT_SCHEDULE_TASK"})),
    (411, frozenset({"HTTP_LENGTH_REQUIRED"})),
    (408, frozenset({"TIMEOUT_EXCEEDED"})),
    (415, frozenset({"UNSUPPORTED_MEDIA_TYPE"})),
)
_STATUS_BY_CODE = {ERROR_CODES[name]: status for status, names in _STATUS_GROUPS for name in names}

# URL parameters the HTTP interface consumes itself; they are never engine settings.
RESERVED_PARAMS = frozenset(
    {
        "query",
        "database",
        "default_format",
        "user",
        "password",
        "quota_key",
        "query_id",
        "stacktrace",
        "role",
        "buffer_size",
        "wait_end_of_query",
        "session_id",
        "session_timeout",
        "session_check",
        "client_protocol_version",
        "close_session",
        "compress",
        "decompress",
    }
)
# Settings that only shape the HTTP exchange (or that we enforce ourselves, like readonly):
# they are honoured or ignored here and never forwarded to the engine.
HTTP_SETTINGS = frozenset(
    {
        "enable_http_compression",
        "http_zlib_compression_level",
        "send_progress_in_http_headers",
        "http_headers_progress_interval_ms",
        "cancel_http_readonly_queries_on_client_close",
        "http_response_buffer_size",
        "http_wait_end_of_query",
        "http_native_compression_disable_checksumming_on_decompress",
        "add_http_cors_header",
        "readonly",
    }
)
PARAM_PREFIX = "param_"
DEFAULT_FORMAT = "TabSeparated"
MAX_HEAD_BYTES = 256 * 1024  # the real server's default max_query_size

READ_KINDS = frozenset({"SELECT", "WITH", "SHOW", "DESCRIBE", "DESC", "EXISTS", "EXPLAIN", "CHECK"})
OUTPUT_KINDS = READ_KINDS


def error(name: str, message: str) -> ClickHouseQueryError:
    """A ClickHouseQueryError with the real code of the named ClickHouse error."""
    return ClickHouseQueryError(ERROR_CODES[name], name, message)


def http_status(code: int) -> int:
    """The HTTP status the real server answers for an exception code."""
    return _STATUS_BY_CODE.get(code, 500)


def error_name(code: int) -> str:
    """The symbolic name of an error code we know, else UNKNOWN_EXCEPTION."""
    return _NAMES_BY_CODE.get(code, "UNKNOWN_EXCEPTION")


_VERSION_TRAILER = re.compile(r"\s*\(version\s+(?:[^()]|\([^()]*\))*\)\s*\.?\s*$")
_CODE_PREFIX = re.compile(r"Code:\s*(\d+)\.\s*DB::Exception:\s*")
_NAME_SUFFIX = re.compile(r"\.?\s*\(([A-Z][A-Z0-9_]+)\)\s*\.?\s*$")


def engine_error(text: str) -> ClickHouseQueryError:
    """Parse an engine error ("Code: N. DB::Exception: ... (NAME)") into code, name, message."""
    match = _CODE_PREFIX.search(text)
    if match is None:
        return ClickHouseQueryError(ERROR_CODES["UNKNOWN_EXCEPTION"], "UNKNOWN_EXCEPTION", text)
    code = int(match.group(1))
    message = text[match.end() :]
    # The engine sometimes wraps its own message once more: peel every repeated layer.
    while True:
        message = _VERSION_TRAILER.sub("", message)
        inner = _CODE_PREFIX.match(message)
        if inner is None:
            break
        message = message[inner.end() :]
    name_match = _NAME_SUFFIX.search(message)
    name = name_match.group(1) if name_match else error_name(code)
    while name_match is not None:
        message = message[: name_match.start()]
        message = _VERSION_TRAILER.sub("", message)
        name_match = _NAME_SUFFIX.search(message)
    return ClickHouseQueryError(code, name, message.strip())


def error_body(exc: ClickHouseQueryError, version: str) -> str:
    """The body text of an error answer, formatted as the real server does."""
    return f"Code: {exc.code}. DB::Exception: {exc.message}. ({exc.name}) (version {version})\n"


@dataclass(frozen=True)
class QueryRequest:
    """What one HTTP query request asks for, parsed from its URL (and form) parameters."""

    query: str = ""
    database: str | None = None
    default_format: str = DEFAULT_FORMAT
    query_id: str | None = None
    session_id: str | None = None
    session_timeout: float | None = None
    session_check: bool = False
    close_session: bool = False
    settings: dict[str, str] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    http_compression: bool | None = None
    readonly: int = 0


def _flag(name: str, value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "true"):
        return True
    if lowered in ("0", "false", ""):
        return False
    raise error("BAD_ARGUMENTS", f"Cannot parse boolean value of parameter '{name}': {value!r}")


def parse_request(
    pairs: Iterable[tuple[str, str]], max_session_timeout: float, method: str = "POST"
) -> QueryRequest:
    """Split URL/form parameters into query text, engine settings, query parameters and options."""
    values: dict[str, str] = {}
    for key, value in pairs:
        if key:  # `?&a=b` yields an empty name: skipped like the real server does
            values[key] = value
    settings: dict[str, str] = {}
    params: dict[str, str] = {}
    for key, value in values.items():
        if key.startswith(PARAM_PREFIX):
            params[key[len(PARAM_PREFIX) :]] = value
        elif key not in RESERVED_PARAMS and key not in HTTP_SETTINGS:
            settings[key] = value
    for key in ("compress", "decompress"):
        if _flag(key, values.get(key, "0")):
            raise error(
                "NOT_IMPLEMENTED",
                f"The embedded server does not support the native '{key}' block compression; "
                "use HTTP Content-Encoding / Accept-Encoding instead",
            )
    timeout = None
    if "session_timeout" in values:
        timeout = _session_timeout(values["session_timeout"], max_session_timeout)
    readonly = _readonly(values.get("readonly", "0"))
    if method == "GET" and readonly == 0:
        readonly = 2  # GET implies readonly, as on the real server
    compression = values.get("enable_http_compression")
    return QueryRequest(
        query=values.get("query", ""),
        database=values.get("database") or None,
        default_format=values.get("default_format") or DEFAULT_FORMAT,
        query_id=values.get("query_id") or None,
        session_id=values.get("session_id") or None,
        session_timeout=timeout,
        session_check=_flag("session_check", values.get("session_check", "0")),
        close_session=_flag("close_session", values.get("close_session", "0")),
        settings=settings,
        params=params,
        http_compression=None
        if compression is None
        else _flag("enable_http_compression", compression),
        readonly=readonly,
    )


def _session_timeout(value: str, maximum: float) -> float:
    try:
        timeout = float(value)
    except ValueError:
        raise error("INVALID_SESSION_TIMEOUT", f"Invalid session timeout: '{value}'") from None
    if not 0 <= timeout <= maximum:
        raise error(
            "INVALID_SESSION_TIMEOUT",
            f"Session timeout '{value}' is larger than max_session_timeout: {maximum:g}. "
            "Maximum session timeout could be modified in configuration file.",
        )
    return timeout


def _readonly(value: str) -> int:
    try:
        level = int(value or "0")
    except ValueError:
        raise error("CANNOT_PARSE_NUMBER", f"Cannot parse readonly value '{value}'") from None
    if level not in (0, 1, 2):
        raise error("BAD_ARGUMENTS", f"Invalid readonly value {level}: expected 0, 1 or 2")
    return level


# ---------------------------------------------------------------- authentication


@dataclass(frozen=True)
class Credentials:
    """The user and password a request presents."""

    user: str
    password: str


def credentials(headers: Mapping[str, str], params: Mapping[str, str]) -> Credentials:
    """Credentials as the real server reads them: Basic auth, X-ClickHouse-* headers, then URL."""
    auth = headers.get("Authorization", "")
    if auth[:6].lower() == "basic ":
        try:
            decoded = base64.b64decode(auth[6:].strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise error("AUTHENTICATION_FAILED", "Invalid Basic authorization header") from None
        user, _, password = decoded.partition(":")
        return Credentials(user or "default", password)
    if "X-ClickHouse-User" in headers or "X-ClickHouse-Key" in headers:
        return Credentials(
            headers.get("X-ClickHouse-User") or "default", headers.get("X-ClickHouse-Key", "")
        )
    return Credentials(params.get("user") or "default", params.get("password", ""))


def check_credentials(given: Credentials, user: str, password: str) -> None:
    """Raise AUTHENTICATION_FAILED unless the request presents the configured user and password."""
    if not password:
        return  # no password configured: the embedded server is open on its (loopback) address
    user_ok = hmac.compare_digest(given.user.encode(), user.encode())
    password_ok = hmac.compare_digest(given.password.encode(), password.encode())
    if not (user_ok and password_ok):
        raise error(
            "AUTHENTICATION_FAILED",
            f"{given.user}: Authentication failed: password is incorrect, "
            "or there is no user with such name",
        )


# ---------------------------------------------------------------- SQL statement heads


@dataclass(frozen=True)
class Statement:
    """What the server must know about a statement before running it."""

    kind: str  # first keyword, upper case ("" when the text has none)
    stateful: bool = False  # changes connection state (SET, USE, temporary tables)
    output_format: str | None = None  # explicit FORMAT clause of a statement with output
    insert_head: str | None = None  # INSERT carrying inline data: the statement without data
    insert_format: str | None = None
    data_offset: int = 0  # where the inline data starts in the scanned bytes

    @property
    def produces_output(self) -> bool:
        """True when the statement answers with a result in some format."""
        return self.kind in OUTPUT_KINDS

    @property
    def has_inline_data(self) -> bool:
        """True for INSERT ... FORMAT/VALUES whose data follows the statement."""
        return self.insert_head is not None


class NeedMoreData(Exception):  # a signal to the reader, not an error
    """The scanned bytes end inside the statement head: read more of the body first."""


@dataclass(frozen=True)
class _Token:
    kind: str  # "word", "quoted", "punct"
    text: str
    start: int
    end: int
    depth: int


_WORD = re.compile(rb"[A-Za-z0-9_$]+")


def _tokens(buf: bytes, final: bool) -> Iterable[_Token]:
    """Tokens of SQL text; raises NeedMoreData when a token may continue past the buffer."""
    pos, depth, size = 0, 0, len(buf)
    while pos < size:
        char = buf[pos : pos + 1]
        two = buf[pos : pos + 2]
        if char.isspace():
            pos += 1
        elif two == b"--" or (char == b"#" and buf[pos + 1 : pos + 2] in (b" ", b"!")):
            end = buf.find(b"\n", pos)
            if end < 0:
                if not final:
                    raise NeedMoreData
                return
            pos = end + 1
        elif two == b"/*":
            pos = _skip_block_comment(buf, pos, final)
        elif char in (b"'", b'"', b"`"):
            end = _quoted_end(buf, pos, final)
            yield _Token("quoted", buf[pos:end].decode("latin-1"), pos, end, depth)
            pos = end
        elif _WORD.match(buf, pos):
            match = _WORD.match(buf, pos)
            assert match is not None
            if match.end() == size and not final:
                raise NeedMoreData
            yield _Token("word", match.group().decode("latin-1"), pos, match.end(), depth)
            pos = match.end()
        else:
            if char == b")":
                depth -= 1
            yield _Token("punct", char.decode("latin-1"), pos, pos + 1, depth)
            if char == b"(":
                depth += 1
            pos += 1


def _skip_block_comment(buf: bytes, pos: int, final: bool) -> int:
    nesting, pos = 1, pos + 2
    while nesting:
        opening, closing = buf.find(b"/*", pos), buf.find(b"*/", pos)
        if closing < 0:
            if not final:
                raise NeedMoreData
            return len(buf)
        if 0 <= opening < closing:
            nesting, pos = nesting + 1, opening + 2
        else:
            nesting, pos = nesting - 1, closing + 2
    return pos


def _quoted_end(buf: bytes, pos: int, final: bool) -> int:
    quote, pos = buf[pos], pos + 1
    while pos < len(buf):
        byte = buf[pos]
        if byte == 0x5C:  # backslash escapes the next byte
            pos += 2
        elif byte == quote:
            if buf[pos + 1 : pos + 2] == bytes([quote]):
                pos += 2  # a doubled quote is an escaped quote
            elif pos + 1 == len(buf) and not final:
                raise NeedMoreData  # the next byte may double this quote
            else:
                return pos + 1
        else:
            pos += 1
    if not final:
        raise NeedMoreData
    return len(buf)


def statement_kind(buf: bytes, final: bool) -> str:
    """The first keyword of the statement at the start of buf, upper case ("" when none)."""
    for token in _tokens(buf, final):
        if token.kind == "word":
            return token.text.upper()
    if not final:
        raise NeedMoreData
    return ""


def scan_statement(buf: bytes, final: bool) -> Statement:
    """Classify the statement at the start of buf; for INSERT, find where its inline data starts.

    Raises NeedMoreData when buf ends inside the part that decides it and final is False:
    the head of an INSERT, or any part of another statement.
    """
    tokens = iter(_tokens(buf, final))
    kind = ""
    for token in tokens:
        if token.kind == "word":
            kind = token.text.upper()
            break
    if kind == "INSERT":
        return _scan_insert(buf, tokens, final)
    if not final:
        raise NeedMoreData  # other statements need all their text anyway
    rest = [t for t in tokens if t.depth == 0]
    words = [t.text.upper() for t in rest if t.kind == "word"]
    stateful = kind in ("SET", "USE") or (kind == "CREATE" and words[:1] == ["TEMPORARY"])
    output_format = None
    for index, token in enumerate(rest):
        upper = token.text.upper() if token.kind == "word" else ""
        following = rest[index + 1] if index + 1 < len(rest) else None
        if upper == "INTO" and following is not None and following.text.upper() == "OUTFILE":
            raise error("INTO_OUTFILE_NOT_ALLOWED", "INTO OUTFILE is not allowed")
        if upper == "FORMAT" and following is not None and following.kind in ("word", "quoted"):
            after = rest[index + 2] if index + 2 < len(rest) else None
            # FORMAT <name> closes a statement (only SETTINGS or ';' may follow it)
            if after is None or after.text == ";" or after.text.upper() == "SETTINGS":
                output_format = following.text.strip("`\"'")
    return Statement(kind=kind, stateful=stateful, output_format=output_format)


def _scan_insert(buf: bytes, tokens: Iterable[_Token], final: bool) -> Statement:
    previous = ""
    tokens = iter(tokens)
    for token in tokens:
        upper = token.text.upper() if token.kind == "word" and token.depth == 0 else ""
        if upper == "INFILE" and previous == "FROM":
            raise error("UNKNOWN_TYPE_OF_QUERY", "Query has infile and was send directly to server")
        if upper in ("SELECT", "WITH"):
            return Statement(kind="INSERT")
        if upper == "VALUES":
            head = buf[: token.start].decode().rstrip()
            return Statement(
                kind="INSERT", insert_head=head, insert_format="Values", data_offset=token.end
            )
        if upper == "FORMAT":
            name = next(tokens, None)
            if name is None and not final:
                raise NeedMoreData
            if name is None or name.kind not in ("word", "quoted"):
                return Statement(kind="INSERT")
            return Statement(
                kind="INSERT",
                insert_head=buf[: token.start].decode().rstrip(),
                insert_format=name.text.strip("`\"'"),
                data_offset=_data_start(buf, name.end, final),
            )
        previous = upper
    if not final:
        raise NeedMoreData
    return Statement(kind="INSERT")


def _data_start(buf: bytes, pos: int, final: bool) -> int:
    """Inline data starts after the first newline following the format name, if there is one."""
    scan = pos
    while scan < len(buf) and buf[scan] in (0x20, 0x09):
        scan += 1
    if buf[scan : scan + 1] == b"\r":
        scan += 1
    if scan >= len(buf) and not final:
        raise NeedMoreData  # the separating newline may still come
    if buf[scan : scan + 1] == b"\n":
        return scan + 1
    return scan


# ---------------------------------------------------------------- body codecs


class Decoder(Protocol):
    """Incremental decoder of a request body."""

    def feed(self, data: bytes) -> bytes:
        """Decode the next piece of the body."""
        ...

    def finish(self) -> bytes:
        """Decode what is left; raise CANNOT_DECOMPRESS when the body was truncated."""
        ...


class _Identity:
    def feed(self, data: bytes) -> bytes:
        return data

    def finish(self) -> bytes:
        return b""


class _Lz4Frames:
    """Concatenated LZ4 frames (clickhouse-connect compresses each block as one frame)."""

    def __init__(self) -> None:
        self._frame = lz4.frame.LZ4FrameDecompressor()
        self._pending = False

    def feed(self, data: bytes) -> bytes:
        out = bytearray()
        while data:
            try:
                out += self._frame.decompress(data)
            except RuntimeError as exc:
                raise error("CANNOT_DECOMPRESS", f"Cannot decompress lz4 body: {exc}") from None
            self._pending = not self._frame.eof
            if not self._frame.eof:
                break
            data = self._frame.unused_data
            self._frame = lz4.frame.LZ4FrameDecompressor()
        return bytes(out)

    def finish(self) -> bytes:
        if self._pending:
            raise error("CANNOT_DECOMPRESS", "Unexpected end of lz4 compressed body")
        return b""


class _Zstd:
    def __init__(self) -> None:
        self._obj = zstandard.ZstdDecompressor().decompressobj(read_across_frames=True)

    def feed(self, data: bytes) -> bytes:
        try:
            return self._obj.decompress(data) if data else b""
        except zstandard.ZstdError as exc:
            raise error("CANNOT_DECOMPRESS", f"Cannot decompress zstd body: {exc}") from None

    def finish(self) -> bytes:
        return b""


class _Zlib:
    """gzip (possibly several members) or zlib-wrapped deflate."""

    def __init__(self, wbits: int, name: str) -> None:
        self._wbits, self._name = wbits, name
        self._obj = zlib.decompressobj(wbits)
        self._pending = False

    def feed(self, data: bytes) -> bytes:
        out = bytearray()
        while data:
            try:
                out += self._obj.decompress(data)
            except zlib.error as exc:
                raise error(
                    "CANNOT_DECOMPRESS", f"Cannot decompress {self._name} body: {exc}"
                ) from None
            self._pending = not self._obj.eof
            if not self._obj.eof:
                break
            data = self._obj.unused_data
            self._obj = zlib.decompressobj(self._wbits)
        return bytes(out)

    def finish(self) -> bytes:
        if self._pending:
            raise error("CANNOT_DECOMPRESS", f"Unexpected end of {self._name} compressed body")
        return b""


def body_decoder(content_encoding: str | None) -> Decoder:
    """The decoder of a request Content-Encoding, or UNKNOWN_COMPRESSION_METHOD."""
    encoding = (content_encoding or "").strip().lower()
    if encoding in ("", "identity", "none"):
        return _Identity()
    if encoding == "lz4":
        return _Lz4Frames()
    if encoding == "zstd":
        return _Zstd()
    if encoding in ("gzip", "x-gzip"):
        return _Zlib(31, "gzip")
    if encoding == "deflate":
        return _Zlib(15, "deflate")
    raise error("UNKNOWN_COMPRESSION_METHOD", f"Unknown compression method: '{content_encoding}'")


RESPONSE_ENCODINGS = ("lz4", "zstd", "gzip", "deflate")


def response_encoding(accept_encoding: str | None, enabled: bool) -> str | None:
    """The Content-Encoding to answer with: the client's first listed method we support."""
    if not enabled or not accept_encoding:
        return None
    for item in accept_encoding.split(","):
        name = item.split(";")[0].strip().lower()
        if name in RESPONSE_ENCODINGS:
            return name
    return None


def encode_body(data: bytes, encoding: str | None) -> bytes:
    """Compress a response body as one stream of the chosen encoding."""
    if encoding is None:
        return data
    if encoding == "lz4":
        return bytes(lz4.frame.compress(data))
    if encoding == "zstd":
        return bytes(zstandard.ZstdCompressor(level=1).compress(data))
    if encoding == "gzip":
        compressor = zlib.compressobj(3, zlib.DEFLATED, 31)
        return compressor.compress(data) + compressor.flush()
    if encoding == "deflate":
        return zlib.compress(data, 3)
    raise ValueError(f"unsupported response encoding {encoding!r}")


# ---------------------------------------------------------------- response headers


def content_type(fmt: str) -> str:
    """The Content-Type the real server sends for an output format."""
    lowered = fmt.lower()
    if lowered.startswith(("tabseparated", "tsv")):
        return "text/tab-separated-values; charset=UTF-8"
    if lowered.startswith("csv"):
        return "text/csv; charset=UTF-8; header=" + ("present" if "names" in lowered else "absent")
    if lowered.startswith("json") or lowered in ("ndjson", "jsonl"):
        return "application/json; charset=UTF-8"
    if lowered.startswith(("native", "rowbinary", "parquet", "arrow", "orc", "avro", "protobuf")):
        return "application/octet-stream"
    if lowered == "xml":
        return "application/xml; charset=UTF-8"
    return "text/plain; charset=UTF-8"


@dataclass(frozen=True)
class Summary:
    """Progress counters of a finished query (the X-ClickHouse-Summary header)."""

    read_rows: int = 0
    read_bytes: int = 0
    written_rows: int = 0
    written_bytes: int = 0
    result_bytes: int = 0
    elapsed_ns: int = 0

    def header(self) -> str:
        """The header value: a JSON object of decimal strings, as the real server sends."""
        return json.dumps(
            {
                "read_rows": str(self.read_rows),
                "read_bytes": str(self.read_bytes),
                "written_rows": str(self.written_rows),
                "written_bytes": str(self.written_bytes),
                "total_rows_to_read": str(self.read_rows),
                "result_rows": str(self.written_rows),
                "result_bytes": str(self.result_bytes or self.written_bytes),
                "elapsed_ns": str(self.elapsed_ns),
            },
            separators=(",", ":"),
        )


def quote_literal(value: str) -> str:
    """A SQL string literal holding value (for SET statements)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


_SETTING_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def check_setting_name(name: str) -> str:
    """The name, when it can be a ClickHouse setting name; UNKNOWN_SETTING otherwise."""
    if not _SETTING_NAME.match(name):
        raise error("UNKNOWN_SETTING", f"Unknown setting '{name}'")
    return name


def settings_statement(assignments: Mapping[str, str | None]) -> str:
    """One SET statement assigning each value (None restores the default)."""
    parts = [
        f"{check_setting_name(name)} = {'DEFAULT' if value is None else quote_literal(value)}"
        for name, value in assignments.items()
    ]
    return "SET " + ", ".join(parts)


def check_readonly(statement: Statement, readonly: int, via_get: bool) -> None:
    """Refuse statements that modify data when the request is read-only (readonly or GET)."""
    if readonly == 0 or statement.kind in READ_KINDS:
        return
    if readonly == 2 and statement.kind in ("SET", "USE"):
        return
    if via_get:
        raise error(
            "READONLY",
            "Cannot execute query in readonly mode. For queries over HTTP, method GET implies "
            "readonly. You should use method POST for modifying queries",
        )
    raise error("READONLY", "Cannot execute query in readonly mode")
