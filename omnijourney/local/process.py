"""Background processes we own: pid files, port checks, start and stop by process group."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from omnijourney.exceptions import PortInUse, ServiceError


def port_accepts(host: str, port: int, timeout: float = 0.5) -> bool:
    """True when something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on right now (the OS picks it; it may be taken again later)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def ensure_port_free(host: str, port: int, what: str) -> None:
    """Raise PortInUse with advice when host:port cannot be bound."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise PortInUse(
                f"{what}: port {host}:{port} is held by another program ({exc.strerror}); "
                f"stop it or choose another port in settings"
            ) from exc


def wait_until(check: Callable[[], bool], timeout: float, what: str, interval: float = 0.2) -> None:
    """Poll check() until it is true; raise ServiceError after timeout seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(interval)
    raise ServiceError(f"{what} did not happen within {timeout:.0f}s")


@dataclass(frozen=True)
class ManagedProcess:
    """A background process recorded by a pid file; `marker` must appear in its command line."""

    name: str
    pidfile: Path
    logfile: Path
    marker: str

    def pid(self) -> int | None:
        """The pid of our live process, or None (stale pid files are removed)."""
        try:
            pid = int(self.pidfile.read_text().strip())
        except (OSError, ValueError):
            return None
        if self._is_ours(pid):
            return pid
        with contextlib.suppress(OSError):
            self.pidfile.unlink()
        return None

    def _is_ours(self, pid: int) -> bool:
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return False
        # A zombie is not running; the pid may also have been reused by another program.
        state = stat.rsplit(")", 1)[-1].split()[0]
        return state != "Z" and self.marker.encode() in cmdline

    def spawn(self, argv: Sequence[str], env: dict[str, str] | None = None) -> int:
        """Start argv detached in its own session with output to the log file."""
        self.logfile.parent.mkdir(parents=True, exist_ok=True)
        self.pidfile.parent.mkdir(parents=True, exist_ok=True)
        with self.logfile.open("ab") as log:
            proc = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
                close_fds=True,
            )
        self.pidfile.write_text(str(proc.pid))
        # Popen returns as soon as exec has begun, but /proc/<pid>/cmdline stays empty until the
        # kernel has set up the new program's arguments; until then the process would not look
        # like ours and exited_early() would report a live process as gone.
        deadline = time.monotonic() + 5.0
        while not self._is_ours(proc.pid) and proc.poll() is None:
            if time.monotonic() > deadline:
                break
            time.sleep(0.005)
        return proc.pid

    def exited_early(self, pid: int) -> bool:
        """True when the process we spawned is gone (reaping it if it is our child)."""
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:  # not our child (or reaped already): look at /proc
            return not self._is_ours(pid)
        # Our child is gone only once reaped: a JVM's main thread can show as a zombie while
        # its other threads still run the shutdown (ports and data dir still held).
        return done == pid

    def log_tail(self, lines: int = 20) -> str:
        """The last lines of the log, for error messages."""
        try:
            return "\n".join(self.logfile.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, timeout: float = 30.0) -> bool:
        """Stop our process group (TERM, then KILL); False when nothing of ours was running."""
        pid = self.pid()
        if pid is None:
            return False
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not self.exited_early(pid):
            time.sleep(0.1)
        if not self.exited_early(pid):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
            wait_until(lambda: self.exited_early(pid), 10, f"{self.name} to exit after SIGKILL")
        with contextlib.suppress(OSError):
            self.pidfile.unlink()
        return True


def stop_together(processes: Sequence[ManagedProcess], timeout: float = 30.0) -> dict[str, int]:
    """Stop several of our processes at once (TERM all, then KILL stragglers); {name: pid}."""
    found = {proc: pid for proc in processes if (pid := proc.pid()) is not None}
    for pid in found.values():
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)
    pending = dict(found)
    deadline = time.monotonic() + timeout
    while pending and time.monotonic() < deadline:
        # exited_early reaps our children: once TERMed they must not linger as zombies.
        pending = {proc: pid for proc, pid in pending.items() if not proc.exited_early(pid)}
        if pending:
            time.sleep(0.1)
    for proc, pid in pending.items():
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
        wait_until(lambda: proc.exited_early(pid), 10, f"{proc.name} to exit after SIGKILL")  # noqa: B023
    for proc in found:
        with contextlib.suppress(OSError):
            proc.pidfile.unlink()
    return {proc.name: pid for proc, pid in found.items()}
