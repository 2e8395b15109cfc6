"""The chdb engine behind the embedded server: connections, their settings, queries and inserts.

Everything here is blocking and runs on worker threads. chdb lets one process open many
connections on one store; each runs its queries in parallel with the others (the GIL is released
while the engine works), but one connection runs one statement at a time. So every HTTP session
owns a connection and session-less requests borrow one from a pool.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from omnijourney.exceptions import ServiceError
from omnijourney.local.chprotocol import (
    Statement,
    Summary,
    engine_error,
    error,
    quote_literal,
    settings_statement,
)

log = logging.getLogger(__name__)

# Formats chdb's Python wrapper turns into Python objects instead of bytes: not wire formats.
_PYTHON_ONLY_FORMATS = frozenset({"dataframe", "arrowtable", "datastore", "debug"})
# The snapshot of previous setting values must not be disturbed by what the session has set.
_SNAPSHOT_GUARD = (
    " SETTINGS use_query_cache = 0, max_result_rows = 0, max_result_bytes = 0,"
    " max_rows_to_read = 0, max_execution_time = 0"
)


@dataclass
class Slot:
    """One chdb connection and the state the server has put on it."""

    conn: Any
    applied: dict[str, str] = field(default_factory=dict)  # URL settings now in effect
    previous: dict[str, str | None] = field(default_factory=dict)  # to restore (None: DEFAULT)
    database: str = "default"  # current database of the connection
    home_database: str = "default"  # what USE statements of its session chose


@dataclass(frozen=True)
class Outcome:
    """The answer of one statement."""

    body: bytes
    summary: Summary


def _identifier(name: str) -> str:
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


class Engine:
    """The chdb store of this process and the pool of connections on it."""

    def __init__(self, store: Path, max_idle: int = 8) -> None:
        import chdb

        store.mkdir(parents=True, exist_ok=True)
        self._connect = cast(Callable[[str], Any], chdb.connect)  # chdb is untyped
        self._path = str(store)
        self._max_idle = max_idle
        self._lock = threading.Lock()
        self._idle: list[Slot] = []
        self._closed = False
        try:
            # The anchor keeps the engine open while other connections come and go.
            self._anchor = self._connect(self._path)
        except Exception as exc:
            raise ServiceError(
                f"cannot open the chdb store {store} (only one process can open a store: "
                f"is another embedded server running on it?): {exc}"
            ) from exc
        info = self._anchor.query(
            "SELECT version(), timezone(), getSetting('enable_http_compression')", "TabSeparated"
        )
        version, timezone, compression = info.bytes().decode().rstrip("\n").split("\t")
        self.version: str = version
        self.timezone: str = timezone
        self.http_compression: bool = compression not in ("0", "false")

    def acquire(self) -> Slot:
        """A connection for one request or session: an idle one, or a new one."""
        with self._lock:
            if self._closed:
                raise error("CANNOT_SCHEDULE_TASK", "The embedded server is shutting down")
            if self._idle:
                return self._idle.pop()
            return Slot(self._connect(self._path))

    def release(self, slot: Slot, reusable: bool = True) -> None:
        """Give a connection back; one whose state cannot be undone is closed instead."""
        with self._lock:
            if reusable and not self._closed and len(self._idle) < self._max_idle:
                self._idle.append(slot)
                return
        self.discard(slot)

    def discard(self, slot: Slot) -> None:
        """Close a connection for good."""
        try:
            slot.conn.close()
        except Exception:
            log.warning("closing a chdb connection failed", exc_info=True)

    def close(self) -> None:
        """Close every idle connection, then the store."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for slot in idle:
            self.discard(slot)
        self._anchor.close()

    # ------------------------------------------------------------ per-statement work

    def prepare(
        self, slot: Slot, settings: Mapping[str, str], database: str | None, statement: Statement
    ) -> None:
        """Bring the connection to the settings and database of the request."""
        # A SET statement runs on the session's own settings, so that what it sets stays.
        target: Mapping[str, str] = {} if statement.kind == "SET" else settings
        restore = {name: slot.previous[name] for name in slot.applied if name not in target}
        changes = {name: value for name, value in target.items() if slot.applied.get(name) != value}
        fresh = [name for name in changes if name not in slot.applied]
        snapshot = self._snapshot(slot, fresh) if fresh else {}
        assignments: dict[str, str | None] = {**restore, **changes}
        if assignments:
            self._run(slot, settings_statement(assignments), "TabSeparated", {})
        for name in restore:
            del slot.applied[name]
            del slot.previous[name]
        for name, value in changes.items():
            slot.previous.setdefault(name, snapshot.get(name))
            slot.applied[name] = value
        wanted = database or slot.home_database
        if wanted != slot.database:
            self._run(slot, f"USE {_identifier(wanted)}", "TabSeparated", {})
            slot.database = wanted

    def _snapshot(self, slot: Slot, names: list[str]) -> dict[str, str | None]:
        listed = ", ".join(quote_literal(name) for name in names)
        result = self._run(
            slot,
            f"SELECT name, value, changed FROM system.settings WHERE name IN ({listed})"
            + _SNAPSHOT_GUARD,
            "TabSeparated",
            {},
        )
        snapshot: dict[str, str | None] = {}
        for line in result.bytes().decode().splitlines():
            name, value, changed = line.split("\t")
            snapshot[name] = value if changed == "1" else None
        return snapshot

    def query(
        self, slot: Slot, sql: str, fmt: str, params: Mapping[str, str], statement: Statement
    ) -> Outcome:
        """Run one statement and return its whole answer."""
        if fmt.lower() in _PYTHON_ONLY_FORMATS:
            raise error("UNKNOWN_FORMAT", f"Unknown output format {fmt}")
        result = self._run(slot, sql, fmt, params)
        body = result.bytes()
        if statement.kind == "USE":
            current = self._run(slot, "SELECT currentDatabase()", "TabSeparated", {})
            slot.database = current.bytes().decode().rstrip("\n")
            slot.home_database = slot.database
        return Outcome(
            body,
            Summary(
                read_rows=result.rows_read(),
                read_bytes=result.bytes_read(),
                written_rows=result.rows_written(),
                written_bytes=result.bytes_written(),
                result_bytes=len(body),
                elapsed_ns=int(result.elapsed() * 1e9),
            ),
        )

    def _run(self, slot: Slot, sql: str, fmt: str, params: Mapping[str, str]) -> Any:
        try:
            return slot.conn.query(sql, fmt, params=dict(params))
        except Exception as exc:
            raise engine_error(str(exc)) from None

    def begin_insert(self, slot: Slot, head: str, fmt: str) -> Any:
        """Open a streaming INSERT of data in format fmt (head is the statement without FORMAT)."""
        try:
            return slot.conn.send_insert(head, fmt)
        except Exception as exc:
            raise engine_error(str(exc)) from None

    def append(self, inserter: Any, data: bytes) -> None:
        """Push the next bytes of an INSERT's data."""
        if not data:
            return
        try:
            inserter.append(data)
        except Exception as exc:
            raise engine_error(str(exc)) from None

    def finish(self, inserter: Any) -> Summary:
        """Commit an INSERT."""
        try:
            result = inserter.finish()
        except Exception as exc:
            raise engine_error(str(exc)) from None
        return Summary(
            written_rows=result.rows_written,
            written_bytes=result.bytes_written,
            elapsed_ns=int(result.elapsed * 1e9),
        )

    def cancel(self, inserter: Any) -> None:
        """Abort an INSERT without committing it."""
        try:
            inserter.cancel()
        except Exception:
            log.warning("cancelling an insert failed", exc_info=True)
