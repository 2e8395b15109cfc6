"""A pipeline worker as a child process of a test or a benchmark: its own group, port, data dir.

`omnijourney demo` runs its worker detached (pid files, `omnijourney down`); tests and benches
need several short-lived ones side by side, each configured by its environment and watched
through /health. Two of them with one app id share the partitions of one consumer group.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from omnijourney.exceptions import ServiceError

SOURCE_ROOT = Path(__file__).resolve().parents[2]
"""The directory holding the `omnijourney` package (a checkout, or site-packages)."""


class WorkerProcess:
    """`python -m omnijourney.cli worker` as a child process, configured by its environment.

    `python_args` go to the interpreter before `-m` (e.g. `-m cProfile -o FILE` to profile).
    """

    def __init__(
        self,
        bootstrap: str,
        data_dir: Path,
        *,
        app_id: str,
        port: int,
        pii_key: str,
        env: Mapping[str, str] | None = None,
        python_args: Sequence[str] = (),
    ) -> None:
        self.bootstrap = bootstrap
        self.app_id = app_id
        self.port = port
        data_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir = data_dir
        self.log = data_dir / "worker.log"
        child_env = {
            **os.environ,
            "PYTHONPATH": str(SOURCE_ROOT),
            "OMNIJOURNEY_DATA_DIR": str(data_dir),
            "OMNIJOURNEY_KAFKA__BOOTSTRAP_SERVERS": bootstrap,
            "OMNIJOURNEY_PRIVACY__PII_HASH_KEY": pii_key,
            "OMNIJOURNEY_WORKER__APP_ID": app_id,
            "OMNIJOURNEY_WORKER__PORT": str(port),
            **(env or {}),
        }
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, *python_args, "-m", "omnijourney.cli", "worker"],
                cwd=SOURCE_ROOT,
                env=child_env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def status(self) -> tuple[int | None, dict[str, Any]]:
        """(HTTP status, JSON body) of GET /health; (None, {}) when nothing answers."""
        url = f"http://127.0.0.1:{self.port}/health"
        try:
            # Only the loopback http:// URL built above is ever opened.
            with urllib.request.urlopen(url, timeout=5) as response:
                return int(response.status), _json(response.read())
        except urllib.error.HTTPError as exc:
            return int(exc.code), _json(exc.read())
        except (urllib.error.URLError, OSError):
            return None, {}

    def health(self) -> int | None:
        """The status of GET /health, None when nothing answers."""
        return self.status()[0]

    def healthy(self) -> bool:
        """Whether /health answers 200."""
        return self.health() == 200

    def log_tail(self, chars: int = 3000) -> str:
        """The end of the worker's log, for error messages."""
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def wait_healthy(self, timeout_s: float = 120.0) -> None:
        """Block until /health answers 200; ServiceError with the log's end if it never does."""
        deadline = time.monotonic() + timeout_s
        while not self.healthy():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise ServiceError(
                    f"worker {self.app_id} on port {self.port} not healthy "
                    f"(exit {self.process.poll()}):\n{self.log_tail()}"
                )
            time.sleep(0.5)

    def stop(self, timeout_s: float = 60.0) -> None:
        """SIGTERM (a graceful shutdown), SIGKILL when it takes longer than timeout_s."""
        self.process.terminate()
        try:
            self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _json(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}
