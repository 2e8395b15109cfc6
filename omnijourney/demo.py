"""The main job on the embedded defaults: the whole stack on a realistic simulation, then a report.

Starts local Kafka and the embedded ClickHouse, applies the ClickHouse schema, starts a worker
(ingest, identity, journeys) and the sink in the background, simulates a few thousand customers
into Kafka, waits until ClickHouse has caught up, prints the journey reports and writes the HTML
report. Everything keeps running afterwards so the user can look around; `omnijourney down`
stops it all.
"""

from __future__ import annotations

import sys
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from omnijourney.exceptions import ServiceError
from omnijourney.local.process import ManagedProcess, wait_until
from omnijourney.settings import Settings, child_environment

DEMO_CUSTOMERS = 2000
DEMO_DAYS = 14
DEMO_SEED = 7
REPORTS = ("paths", "ropo", "attribution")


def background(settings: Settings, name: str) -> ManagedProcess:
    """The pid-file handle of a background pipeline process (`worker` or `sink`)."""
    base = settings.path("demo")
    return ManagedProcess(
        name=name,
        pidfile=base / f"{name}.pid",
        logfile=base / f"{name}.log",
        marker=f"--data-dir={settings.data_dir.resolve()}",
    )


def _start(settings: Settings, name: str) -> str:
    process = background(settings, name)
    pid = process.pid()
    if pid is not None:
        return f"{name}: already running (pid {pid})"
    argv = [sys.executable, "-m", "omnijourney.cli", process.marker, name]
    pid = process.spawn(argv, env=child_environment(settings))
    return f"{name}: started (pid {pid}), log {process.logfile}"


def stop_background(settings: Settings) -> list[str]:
    """Stop the worker and sink the demo started (nothing else)."""
    lines = []
    for name in ("sink", "worker"):
        if background(settings, name).stop():
            lines.append(f"{name}: stopped")
    return lines


def _healthy(url: str) -> bool:
    try:
        # Only the http:// health URL this module builds from settings is ever opened.
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310
            return int(response.status) == 200
    except (urllib.error.URLError, OSError):
        return False


def _count(ch: Any) -> int:
    return int(ch.query("SELECT count() FROM touchpoints").result_rows[0][0])


def _wait_caught_up(ch: Any, timeout_s: float = 240.0) -> int:
    """Poll ClickHouse until the touchpoint count stops growing; the count."""
    deadline = time.monotonic() + timeout_s
    last, stable = -1, 0
    while time.monotonic() < deadline:
        count = _count(ch)
        stable = stable + 1 if count == last and count > 0 else 0
        print(f"\r  clickhouse: {count:,} touchpoints so far", end="", flush=True)
        if stable >= 4:
            break
        last = count
        time.sleep(2)
    print()
    return last


def _evaluation(ch: Any, truth_path: Path) -> str:
    from omnijourney import evaluation
    from omnijourney.simulator.truth import read_truth

    with truth_path.open("rb") as truth_file:
        truth = read_truth(truth_file)
    return evaluation.format_table(
        evaluation.evaluate(
            truth, evaluation.prediction_from_query(lambda sql: ch.query(sql).result_rows)
        )
    )


def _html(ch: Any, path: Path) -> str:
    from omnijourney import html_report

    journeys = html_report.journeys_from_rows(ch.query(html_report.JOURNEYS_SQL).result_rows)
    data = html_report.write_page(
        journeys, path, title="omnijourney demo: customer journeys", generated_at=datetime.now(UTC)
    )
    return f"html report: {path} ({data.journeys:,} journeys of {data.customers:,} customers)"


def run(settings: Settings, customers: int = DEMO_CUSTOMERS, days: int = DEMO_DAYS) -> int:
    """Start everything, simulate, wait for ClickHouse, report."""
    from omnijourney.local import clickhouse, kafka
    from omnijourney.simulator.command import SimulateOptions
    from omnijourney.simulator.command import run as simulate
    from sinks import reports
    from sinks.clickhouse import client
    from sinks.migrations import migrate

    print(kafka.start(settings))
    print(clickhouse.start(settings))
    for line in migrate(settings):
        print(f"clickhouse: {line}")
    print(_start(settings, "worker"))
    print(_start(settings, "sink"))
    worker_health = f"http://{settings.worker.host}:{settings.worker.port}/health"
    wait_until(lambda: _healthy(worker_health), 120, "the worker to answer /health")
    print(f"worker: healthy at {worker_health}")

    print(f"\nsimulating {customers:,} customers over {days} days (seed {DEMO_SEED}) ...")
    options = SimulateOptions(
        customers=customers,
        days=days,
        seed=DEMO_SEED,
        out_truth=settings.path("demo", "truth.jsonl"),
    )
    print(simulate(settings, options))

    ch = client(settings)
    print("\nwaiting until ClickHouse has caught up ...")
    total = _wait_caught_up(ch)
    if total <= 0:
        raise ServiceError(
            f"no touchpoint reached ClickHouse; see {background(settings, 'worker').logfile} "
            f"and {background(settings, 'sink').logfile}"
        )
    print("\n== evaluation against the simulation's ground truth")
    print(_evaluation(ch, settings.path("demo", "truth.jsonl")))
    for name in REPORTS:
        query = reports.saved_query(name)
        print(f"\n== {name}: {query.description.splitlines()[0] if query.description else ''}")
        result = reports.run_report(ch, query, {})
        print(reports.render(result, "table"), end="")
    print("\n" + _html(ch, settings.path("demo", "journeys.html")))
    print(
        f"\nThe stack keeps running: Kafka at {settings.kafka.bootstrap}, ClickHouse at "
        f"{settings.clickhouse.url}, worker at {worker_health}.\n"
        '  query it:      .venv/bin/omnijourney query "SELECT channel, count() FROM touchpoints '
        'GROUP BY channel"\n'
        "  saved reports: .venv/bin/omnijourney report --list\n"
        "  stop it all:   .venv/bin/omnijourney down   (or: make down)"
    )
    return 0
