"""Start, stop and inspect the embedded ClickHouse server (a background `clickhouse serve`)."""

from __future__ import annotations

import contextlib
import os
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from omnijourney.exceptions import PortInUse, ServiceError
from omnijourney.local.chserver import serve, store_path
from omnijourney.local.process import ManagedProcess, ensure_port_free, port_accepts
from omnijourney.settings import ClickHouseSettings, Settings, child_environment

__all__ = ["ping", "process", "serve", "start", "status", "stop"]

_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def process(settings: Settings) -> ManagedProcess:
    """The background process of the embedded server of these settings."""
    store = store_path(settings)
    return ManagedProcess(
        name="embedded ClickHouse",
        pidfile=store.parent / "server.pid",
        logfile=store.parent / "server.log",
        # /proc cmdline arguments are NUL-separated and ManagedProcess turns NULs into spaces:
        # the trailing space keeps /x/store from matching /x/store2.
        marker=f"--store={store} ",
    )


def ping(ch: ClickHouseSettings, timeout: float = 1.0) -> bool:
    """True when a ClickHouse HTTP interface answers /ping at the configured address."""
    try:
        with _NO_PROXY.open(f"{ch.url}/ping", timeout=timeout) as response:
            return bool(response.status == 200 and response.read() == b"Ok.\n")
    except (OSError, urllib.error.URLError):
        return False


def start(settings: Settings) -> str:
    """Start the embedded server in the background; return once it answers /ping."""
    ch = settings.clickhouse
    if not ch.embedded:
        return f"clickhouse: embedded server disabled; using {ch.url}"
    proc = process(settings)
    pid = proc.pid()
    if pid is not None:
        _wait_ready(settings, proc, pid, ours=False)
        return f"clickhouse: already running (pid {pid}) on {ch.url}"
    if port_accepts(ch.client_host, ch.port):
        raise PortInUse(
            f"embedded ClickHouse: port {ch.host}:{ch.port} is held by another program; "
            "stop it or choose another port in settings"
        )
    ensure_port_free(ch.host, ch.port, "embedded ClickHouse")
    store = store_path(settings)
    argv = [sys.executable, "-m", "omnijourney.cli", "clickhouse", "serve", f"--store={store}"]
    pid = proc.spawn(argv, env=child_environment(settings))
    _wait_ready(settings, proc, pid)
    return f"clickhouse: started (pid {pid}) on {ch.url}, store {store}"


def _wait_ready(settings: Settings, proc: ManagedProcess, pid: int, ours: bool = True) -> None:
    ch = settings.clickhouse
    deadline = time.monotonic() + ch.start_timeout_s
    while time.monotonic() < deadline:
        if _gone(pid):
            raise ServiceError(
                f"embedded ClickHouse exited while starting; last log lines:\n{proc.log_tail()}"
            )
        if ping(ch, timeout=0.5):
            return
        time.sleep(0.1)
    if ours:
        proc.stop(ch.stop_timeout_s)  # a server this call started and that never came up
    raise ServiceError(
        f"embedded ClickHouse did not answer {ch.url}/ping within {ch.start_timeout_s:.0f}s; "
        f"last log lines:\n{proc.log_tail()}"
    )


def _gone(pid: int) -> bool:
    """True when the process has exited.

    ManagedProcess.exited_early also checks the marker, but right after spawn the child still
    shows the parent's command line (before exec), so look at the process itself here.
    """
    with contextlib.suppress(ChildProcessError):
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[0] == "Z"


def stop(settings: Settings) -> str:
    """Stop our embedded server (never another program on the port)."""
    ch = settings.clickhouse
    if not ch.embedded:
        return "clickhouse: embedded server disabled; nothing to stop"
    if process(settings).stop(ch.stop_timeout_s):
        return "clickhouse: stopped"
    return "clickhouse: not running"


def status(settings: Settings) -> str:
    """One line saying what answers where."""
    ch = settings.clickhouse
    if not ch.embedded:
        state = "answering" if ping(ch) else "NOT answering"
        return f"clickhouse: external server {ch.url} {state}"
    pid = process(settings).pid()
    if pid is None:
        return "clickhouse: not running"
    state = "answering" if ping(ch) else "NOT answering yet"
    return f"clickhouse: running (pid {pid}) on {ch.url}, {state}, store {store_path(settings)}"
