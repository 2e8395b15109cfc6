"""The README's main command, end to end on a small simulation, with its own services."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.pipeline_support import ROOT, free_port

pytestmark = [pytest.mark.kafka, pytest.mark.clickhouse, pytest.mark.slow]


def _env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMNIJOURNEY_")}
    kafka, controller = free_port(), free_port()
    return {
        **env,
        "PYTHONPATH": str(ROOT),
        "OMNIJOURNEY_DATA_DIR": str(data_dir),
        "OMNIJOURNEY_KAFKA__PORT": str(kafka),
        "OMNIJOURNEY_KAFKA__CONTROLLER_PORT": str(controller),
        "OMNIJOURNEY_CLICKHOUSE__PORT": str(free_port()),
        "OMNIJOURNEY_WORKER__PORT": str(free_port()),
        "OMNIJOURNEY_SINK__HEALTH_PORT": str(free_port()),
        "OMNIJOURNEY_COLLECTOR__PORT": str(free_port()),
    }


def _ours(data_dir: Path) -> list[str]:
    out = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=True)
    return [line for line in out.stdout.splitlines() if str(data_dir) in line]


def test_demo_runs_the_whole_stack_and_down_stops_it(tmp_path: Path) -> None:
    data_dir = tmp_path / "demo"
    env = _env(data_dir)
    cli = [sys.executable, "-m", "omnijourney.cli"]
    try:
        done = subprocess.run(
            [*cli, "demo", "--customers", "150", "--days", "5"],
            check=False,
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=420,
        )
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        out = done.stdout
        # Every stage reported, the reports printed, the page written.
        for expected in (
            "worker: healthy",
            "simulated 150 customers",
            "== paths",
            "== ropo",
            "== attribution",
            "== evaluation",
            "precision",
            "html report:",
        ):
            assert expected in out, out[-3000:]
        page = data_dir / "demo" / "journeys.html"
        assert page.exists() and "<svg" in page.read_text()
        # `report --html` draws the same page from ClickHouse.
        again = tmp_path / "again.html"
        report = subprocess.run(
            [*cli, "report", "--html", str(again)],
            check=False,
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert report.returncode == 0, report.stderr
        assert "<svg" in again.read_text() and "journeys)" in report.stdout
        paths = out.split("== paths", 1)[1].split("== ropo", 1)[0]
        assert "(0 rows)" not in paths and "web" in paths, paths
        # The live status line was printed while simulating and catching up (not a TTY here:
        # whole lines, never a carriage return), and ClickHouse caught up with every event.
        assert "\r" not in out
        status = [line for line in out.splitlines() if line.startswith("sent ")]
        assert any("journeys" in line and "dead letters" in line for line in status), out[:3000]
        assert "clickhouse: caught up" in out, out[-3000:]
        assert "where the evidence allows them" in out
        # The same simulation again, through the HTTP collector the demo starts: every event
        # is accepted (the pipeline drops them as duplicates), the malformed ones refused.
        again = subprocess.run(
            [*cli, "demo", "--customers", "150", "--days", "5", "--via-collector"],
            check=False,
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
        assert "collector: healthy" in again.stdout and "through the collector" in again.stdout
        sent = re.search(
            r"(\d[\d,]*) events, (\d[\d,]*) duplicates, (\d[\d,]*) malformed", again.stdout
        )
        told = re.search(r"collector accepted (\d[\d,]*), refused (\d[\d,]*)", again.stdout)
        assert sent and told, again.stdout[-3000:]
        events, copies, malformed = (int(n.replace(",", "")) for n in sent.groups())
        accepted, refused = (int(n.replace(",", "")) for n in told.groups())
        assert (accepted, refused) == (events + copies, malformed) and malformed > 0
        assert "clickhouse: caught up" in again.stdout
        assert "warning" not in again.stdout
    finally:
        subprocess.run(
            [*cli, "down"], check=False, env=env, cwd=ROOT, capture_output=True, timeout=120
        )
    assert _ours(data_dir) == []
