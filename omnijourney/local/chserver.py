"""The embedded ClickHouse server: the ClickHouse HTTP interface over one process's chdb store."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import signal
import socket
import time
import uuid
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from aiohttp import BodyPartReader, MultipartReader, web

from omnijourney.exceptions import (
    ClickHouseQueryError,
    ConfigurationError,
    PortInUse,
)
from omnijourney.local import chprotocol as proto
from omnijourney.local.chengine import Engine, Outcome, Slot
from omnijourney.settings import Settings

log = logging.getLogger(__name__)
T = TypeVar("T")

_NO_HANDLER = (
    "There is no handle {path}\n\nUse / or /ping for health checks.\n"
    "Or /replicas_status for more sophisticated health checks.\n\n"
    "Send queries from your program with POST method or GET /?query=...\n"
)
_BATCH_BYTES = 1 << 20  # raw body bytes handed to a worker thread at once during an insert


def store_path(settings: Settings) -> Path:
    """The chdb store directory of the embedded server."""
    configured = settings.clickhouse.store_dir
    return configured.resolve() if configured else settings.path("clickhouse", "store")


def is_loopback(host: str) -> bool:
    """True when host names a loopback address."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass
class Session:
    """An HTTP session (session_id): its own connection, kept between requests."""

    slot: Slot
    timeout: float
    expires: float
    busy: bool = False


@dataclass
class Lease:
    """The connection one request runs on."""

    slot: Slot
    in_session: bool
    reusable: bool = True


@dataclass
class _Body:
    """The request body, decoded piece by piece, with its size limit."""

    stream: Any
    decoder: proto.Decoder
    limit: int
    raw_bytes: int = 0
    done: bool = False  # every raw byte has been read
    finished: bool = False  # and decoded

    async def raw(self, at_least: int = 1) -> bytes:
        """At least at_least raw (still encoded) bytes, fewer at the end; b"" once exhausted."""
        parts: list[bytes] = []
        size = 0
        while size < at_least and not self.done:
            chunk = await self.stream.readany()
            if not chunk:
                self.done = True
                break
            self.raw_bytes += len(chunk)
            if self.raw_bytes > self.limit:
                raise proto.error(
                    "QUERY_IS_TOO_LARGE",
                    f"Request body exceeds the limit of {self.limit} bytes (max_body_bytes)",
                )
            parts.append(chunk)
            size += len(chunk)
        return b"".join(parts)

    def decode(self, raw: bytes, last: bool) -> bytes:
        """Decode raw bytes read by raw(); after the last read, also what the decoder held back.

        last is passed in (not read from self.done) because a worker thread may decode one
        batch while the event loop already reads the next.
        """
        out = self.decoder.feed(raw)
        if last and not self.finished:
            self.finished = True
            out += self.decoder.finish()
        return out

    async def more(self, at_least: int = 1) -> bytes:
        """The next decoded bytes (decoded on the event loop: for small reads only)."""
        raw = await self.raw(at_least)
        return self.decode(raw, self.done)

    async def drain(self) -> None:
        """Read and drop what the client still sends, so it can read our answer."""
        with contextlib.suppress(Exception):
            while not self.done and self.raw_bytes <= self.limit:
                await self.raw(_BATCH_BYTES)


@dataclass
class Server:
    """Request handling of the embedded server."""

    settings: Settings
    engine: Engine
    executor: ThreadPoolExecutor
    display_name: str = field(default_factory=socket.gethostname)
    sessions: dict[str, Session] = field(default_factory=dict)
    stopping: bool = False
    inflight: int = 0
    drained: asyncio.Event = field(default_factory=asyncio.Event)

    async def _call(self, func: Callable[..., T], *args: Any) -> T:
        future = asyncio.get_running_loop().run_in_executor(self.executor, func, *args)
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            # The engine call cannot be interrupted: let it end before the connection is reused.
            with contextlib.suppress(BaseException):
                await future
            raise

    # ------------------------------------------------------------ HTTP entry point

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Answer one HTTP request like a ClickHouse server."""
        self.inflight += 1
        self.drained.clear()
        try:
            return await self._handle(request)
        finally:
            self.inflight -= 1
            if self.inflight == 0:
                self.drained.set()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if request.path in ("/ping", "/replicas_status"):
            return web.Response(text="Ok.\n")
        if request.path != "/":
            return web.Response(status=404, text=_NO_HANDLER.format(path=request.path))
        no_query = "query" not in request.query and not request.body_exists
        if request.method in ("GET", "HEAD") and no_query:
            return web.Response(text="Ok.\n")
        query_id = request.query.get("query_id") or str(uuid.uuid4())
        ch = self.settings.clickhouse
        multipart = request.content_type.startswith("multipart/form-data")
        # Created first so that any error can drain the body and the client reads our answer.
        body = _Body(request.content, proto.body_decoder(None), ch.max_body_bytes)
        try:
            if self.stopping:
                raise proto.error("CANNOT_SCHEDULE_TASK", "The embedded server is shutting down")
            pairs = list(request.query.items())
            if multipart:
                pairs += await _form_fields(request, ch.max_body_bytes)
                body.done = body.finished = True
            req = proto.parse_request(pairs, ch.max_session_timeout_s, request.method)
            query_id = req.query_id or query_id
            given = proto.credentials(request.headers, dict(pairs))
            proto.check_credentials(given, ch.username, ch.password.get_secret_value())
            body.decoder = proto.body_decoder(request.headers.get("Content-Encoding"))
            async with self._lease(req) as lease:
                outcome, statement = await self._execute(request, req, body, lease)
            return await self._answer(request, req, query_id, outcome, statement)
        except ClickHouseQueryError as exc:
            await body.drain()
            log.info("query %s failed with code %s (%s)", query_id, exc.code, exc.name)
            return self._error(exc, query_id)
        except ConnectionError:
            log.info("query %s: the client went away", query_id)
            return web.Response(status=499)  # nobody will read it: the connection is gone
        except Exception as exc:
            # A bug of ours must still reach the client as a ClickHouse error, not a bare 500.
            log.exception("query %s: unexpected failure", query_id)
            await body.drain()
            unexpected = proto.error("UNKNOWN_EXCEPTION", f"{type(exc).__name__}: {exc}")
            return self._error(unexpected, query_id)

    async def _answer(
        self,
        request: web.Request,
        req: proto.QueryRequest,
        query_id: str,
        outcome: Outcome,
        statement: proto.Statement,
    ) -> web.Response:
        headers = self._headers(query_id, req)
        headers["X-ClickHouse-Summary"] = outcome.summary.header()
        fmt = statement.output_format or req.default_format
        headers["Content-Type"] = "text/plain; charset=UTF-8"
        if statement.produces_output:
            headers["X-ClickHouse-Format"] = fmt
            headers["Content-Type"] = proto.content_type(fmt)
        enabled = req.http_compression
        if enabled is None:
            enabled = self.engine.http_compression
        encoding = proto.response_encoding(request.headers.get("Accept-Encoding"), enabled)
        data = outcome.body
        if encoding and data:
            data = await self._call(proto.encode_body, data, encoding)
            headers["Content-Encoding"] = encoding
        return web.Response(body=data, headers=headers)

    def _headers(self, query_id: str, req: proto.QueryRequest | None) -> dict[str, str]:
        timezone = self.engine.timezone
        if req is not None:
            timezone = req.settings.get("session_timezone") or timezone
        return {
            "X-ClickHouse-Query-Id": query_id,
            "X-ClickHouse-Server-Display-Name": self.display_name,
            "X-ClickHouse-Timezone": timezone,
        }

    def _error(self, exc: ClickHouseQueryError, query_id: str) -> web.Response:
        headers = self._headers(query_id, None)
        headers["X-ClickHouse-Exception-Code"] = str(exc.code)
        headers["Content-Type"] = "text/plain; charset=UTF-8"
        return web.Response(
            status=proto.http_status(exc.code),
            text=proto.error_body(exc, self.engine.version),
            headers=headers,
        )

    # ------------------------------------------------------------ sessions and connections

    @contextlib.asynccontextmanager
    async def _lease(self, req: proto.QueryRequest) -> AsyncIterator[Lease]:
        if req.session_id is None:
            slot = await self._call(self.engine.acquire)
            lease = Lease(slot, in_session=False)
            try:
                yield lease
            finally:
                await self._call(self.engine.release, slot, lease.reusable)
            return
        session = self.sessions.get(req.session_id)
        timeout = (
            req.session_timeout
            if req.session_timeout is not None
            else self.settings.clickhouse.session_timeout_s
        )
        if session is None:
            if req.session_check:
                raise proto.error("SESSION_NOT_FOUND", f"Session {req.session_id} not found")
            slot = await self._call(self.engine.acquire)
            session = self.sessions.get(req.session_id)  # another request may have won the race
            if session is None:
                session = Session(slot, timeout, time.monotonic() + timeout)
                self.sessions[req.session_id] = session
            else:
                await self._call(self.engine.release, slot)
        if session.busy:
            raise proto.error(
                "SESSION_IS_LOCKED", f"Session {req.session_id} is locked by a concurrent client"
            )
        session.busy = True
        session.timeout = timeout
        try:
            yield Lease(session.slot, in_session=True)
        finally:
            session.busy = False
            session.expires = time.monotonic() + session.timeout
            if req.close_session:
                self.sessions.pop(req.session_id, None)
                await self._call(self.engine.discard, session.slot)

    async def expire_sessions(self, interval: float = 1.0) -> None:
        """Close sessions idle for longer than their timeout, forever."""
        while True:
            await asyncio.sleep(interval)
            now = time.monotonic()
            for session_id, session in list(self.sessions.items()):
                if not session.busy and session.expires < now:
                    del self.sessions[session_id]
                    await self._call(self.engine.discard, session.slot)

    def close(self) -> None:
        """Close every session and the engine (blocking: call from a worker thread)."""
        sessions, self.sessions = self.sessions, {}
        for session in sessions.values():
            self.engine.discard(session.slot)
        self.engine.close()

    # ------------------------------------------------------------ statements

    async def _execute(
        self, request: web.Request, req: proto.QueryRequest, body: _Body, lease: Lease
    ) -> tuple[Outcome, proto.Statement]:
        via_get = request.method == "GET"
        buf = (req.query + "\n").encode() if req.query else b""
        statement: proto.Statement | None = None
        while True:
            try:
                if proto.statement_kind(buf, final=body.finished) == "INSERT":
                    statement = proto.scan_statement(buf, final=body.finished)
                break
            except proto.NeedMoreData:
                if len(buf) > proto.MAX_HEAD_BYTES:
                    raise proto.error("SYNTAX_ERROR", "Max query size exceeded") from None
                buf += await body.more()
        if statement is not None and statement.has_inline_data:
            proto.check_readonly(statement, req.readonly, via_get)
            summary = await self._insert(req, statement, buf[statement.data_offset :], body, lease)
            return Outcome(b"", summary), statement
        parts = [buf]
        while not body.finished:
            raw = await body.raw(_BATCH_BYTES)
            parts.append(await self._call(body.decode, raw, body.done))
        buf = b"".join(parts)
        try:
            sql = buf.decode()
        except UnicodeDecodeError:
            raise proto.error("CANNOT_PARSE_TEXT", "The query is not valid UTF-8") from None
        if not sql.strip():
            raise proto.error("SYNTAX_ERROR", "Empty query")
        statement = proto.scan_statement(buf, final=True)
        proto.check_readonly(statement, req.readonly, via_get)
        if statement.stateful and not lease.in_session:
            lease.reusable = False  # its effect must not outlive this request
        outcome = await self._call(self._run_query, lease.slot, req, sql, statement)
        return outcome, statement

    def _run_query(
        self, slot: Slot, req: proto.QueryRequest, sql: str, statement: proto.Statement
    ) -> Outcome:
        self.engine.prepare(slot, req.settings, req.database, statement)
        return self.engine.query(slot, sql, req.default_format, req.params, statement)

    async def _insert(
        self,
        req: proto.QueryRequest,
        statement: proto.Statement,
        first: bytes,
        body: _Body,
        lease: Lease,
    ) -> proto.Summary:
        inserter = await self._call(self._begin_insert, lease.slot, req, statement, first)
        pending: asyncio.Future[None] | None = None
        try:
            while not body.done:
                raw = await body.raw(_BATCH_BYTES)
                if pending is not None:
                    await pending  # the worker appends one batch while we read the next
                last = body.done
                pending = asyncio.ensure_future(self._call(self._feed, body, inserter, raw, last))
            if pending is not None:
                await pending
            pending = None
            if not body.finished:
                await self._call(self._feed, body, inserter, b"", True)
            return await self._call(self.engine.finish, inserter)
        except BaseException:
            if pending is not None:
                with contextlib.suppress(BaseException):
                    await pending  # never cancel while an append still runs on the connection
            await self._call(self.engine.cancel, inserter)
            raise

    def _begin_insert(
        self, slot: Slot, req: proto.QueryRequest, statement: proto.Statement, first: bytes
    ) -> Any:
        assert statement.insert_head is not None and statement.insert_format is not None
        self.engine.prepare(slot, req.settings, req.database, statement)
        inserter = self.engine.begin_insert(slot, statement.insert_head, statement.insert_format)
        try:
            self.engine.append(inserter, first)
        except BaseException:
            self.engine.cancel(inserter)
            raise
        return inserter

    def _feed(self, body: _Body, inserter: Any, raw: bytes, last: bool) -> None:
        self.engine.append(inserter, body.decode(raw, last))


async def _form_fields(request: web.Request, limit: int) -> list[tuple[str, str]]:
    """The text fields of a multipart form (query, param_*); external data is refused."""
    reader = await request.multipart()
    fields: list[tuple[str, str]] = []
    total = 0
    while True:
        part = await reader.next()
        if part is None:
            return fields
        if isinstance(part, MultipartReader) or not isinstance(part, BodyPartReader):
            raise proto.error("NOT_IMPLEMENTED", "Nested multipart bodies are not supported")
        if part.filename is not None:
            raise proto.error(
                "NOT_IMPLEMENTED",
                "External data (file parts) is not supported by the embedded server",
            )
        value = await part.read(decode=True)
        total += len(value)
        if total > limit:
            raise proto.error("QUERY_IS_TOO_LARGE", f"Form exceeds the limit of {limit} bytes")
        fields.append((part.name or "", value.decode()))


# ---------------------------------------------------------------- process entry point


def serve(settings: Settings) -> None:
    """Run the embedded ClickHouse HTTP server in the foreground until SIGTERM or SIGINT."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    asyncio.run(_serve(settings))


async def _serve(settings: Settings) -> None:
    ch = settings.clickhouse
    if not is_loopback(ch.host) and not ch.password.get_secret_value():
        raise ConfigurationError(
            f"refusing to serve the embedded ClickHouse on non-loopback host {ch.host} "
            "without a password: set OMNIJOURNEY_CLICKHOUSE__PASSWORD"
        )
    store = store_path(settings)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    executor = ThreadPoolExecutor(max_workers=ch.workers, thread_name_prefix="chdb")
    engine = await loop.run_in_executor(executor, Engine, store, ch.workers)
    server = Server(settings, engine, executor)
    app = web.Application(client_max_size=ch.max_body_bytes)
    app.router.add_route("*", "/{tail:.*}", server.handle)
    # auto_decompress off: request bodies are decoded here, with lz4 and the raw-size limit.
    runner = web.AppRunner(
        app, access_log=None, handle_signals=False, shutdown_timeout=2, auto_decompress=False
    )
    await runner.setup()
    expiry = asyncio.ensure_future(server.expire_sessions())
    try:
        site = web.TCPSite(runner, ch.host, ch.port, reuse_address=True)
        try:
            await site.start()
        except OSError as exc:
            raise PortInUse(
                f"embedded ClickHouse: cannot listen on {ch.host}:{ch.port} ({exc.strerror}); "
                "stop the program holding it or choose another port in settings"
            ) from exc
        log.info(
            "embedded ClickHouse %s (chdb) serving http://%s:%s, store %s",
            engine.version,
            ch.host,
            ch.port,
            store,
        )
        await stop.wait()
        log.info("stopping: no new connections; waiting for running requests")
        # aiohttp's own shutdown stops reading request bodies at once, which would abort a
        # streaming insert: let running requests end first (within half the stop timeout).
        await site.stop()
        server.stopping = True
        if server.inflight:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(server.drained.wait(), timeout=ch.stop_timeout_s / 2)
    finally:
        expiry.cancel()
        await runner.cleanup()
        await loop.run_in_executor(executor, server.close)
        executor.shutdown(wait=True)
        log.info("stopped; store closed")
