"""The main job on the embedded defaults: the whole stack on a realistic simulation, then a report.

Starts local Kafka and the embedded ClickHouse, applies the ClickHouse schema, starts a worker
(ingest, identity, journeys) and the sink in the background (and the HTTP collector with
`--via-collector`), simulates a few thousand customers into Kafka (or through the collector)
with a live status line, waits until ClickHouse has caught up, prints the evaluation against
the simulation's ground truth and the journey reports, and writes the HTML report. Everything
keeps running afterwards so the user can look around; `omnijourney down` stops it all.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from omnijourney.exceptions import ConfigurationError, ServiceError
from omnijourney.local.process import ManagedProcess, wait_until
from omnijourney.settings import CollectorSettings, Settings, WriteKey, child_environment

if TYPE_CHECKING:
    from omnijourney.simulator.command import Outcome
    from omnijourney.simulator.config import SimulationConfig
    from omnijourney.status_board import PipelineFigures, Poller, StatusBoard

DEMO_CUSTOMERS = 2000
DEMO_DAYS = 14
DEMO_SEED = 7
REPORTS = ("paths", "ropo", "attribution")
BACKGROUND: Final = ("collector", "sink", "worker")
"""The demo's background processes, in the order they are stopped."""
DEMO_KEY: Final = "demo"
"""Name of the collector write key the demo makes for itself (every channel)."""


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
    """Stop the collector, worker and sink the demo started (nothing else)."""
    lines = []
    for name in BACKGROUND:
        if background(settings, name).stop():
            lines.append(f"{name}: stopped")
    return lines


def demo_write_key(settings: Settings) -> str:
    """The demo collector's write key: made once per data dir, kept there readable by the
    user only (a collector the demo started earlier still uses it)."""
    path = settings.path("secrets", "demo_write_key")
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with contextlib.suppress(FileExistsError):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, secrets.token_urlsafe(32).encode())
        finally:
            os.close(fd)
    if os.stat(path).st_mode & 0o077:
        raise ConfigurationError(f"{path} is accessible by other users; run chmod 600 on it")
    return path.read_text().strip()


def with_demo_key(settings: Settings, secret: str) -> Settings:
    """The settings with the demo's write key (every channel) next to any configured ones."""
    from schemas.channel import CHANNELS

    keys = dict(settings.collector.write_keys)
    keys[DEMO_KEY] = WriteKey.model_validate({"secret": secret, "channels": tuple(CHANNELS)})
    fields = {**settings.collector.model_dump(), "write_keys": keys}
    return settings.model_copy(update={"collector": CollectorSettings.model_validate(fields)})


def _healthy(url: str) -> bool:
    try:
        # Only the http:// health URL this module builds from settings is ever opened.
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310
            return int(response.status) == 200
    except (urllib.error.URLError, OSError):
        return False


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


def _start_stack(settings: Settings, via_collector: bool) -> str:
    """Kafka, ClickHouse and its schema, worker, sink (and collector); the worker's health URL."""
    from omnijourney.local import clickhouse, kafka
    from sinks.migrations import migrate

    print(kafka.start(settings))
    print(clickhouse.start(settings))
    for line in migrate(settings):
        print(f"clickhouse: {line}")
    print(_start(settings, "worker"))
    print(_start(settings, "sink"))
    if via_collector:
        print(_start(with_demo_key(settings, demo_write_key(settings)), "collector"))
    worker_health = f"http://{settings.worker.host}:{settings.worker.port}/health"
    wait_until(lambda: _healthy(worker_health), 120, "the worker to answer /health")
    print(f"worker: healthy at {worker_health}")
    if via_collector:
        health = f"{collector_url(settings)}/health"
        wait_until(lambda: _healthy(health), 120, "the collector to answer /health")
        print(f"collector: healthy at {health}")
    return worker_health


def collector_url(settings: Settings) -> str:
    """Base URL of the configured collector."""
    return f"http://{settings.collector.host}:{settings.collector.port}"


def _simulate(
    settings: Settings, customers: int, days: int, via_collector: bool, rate: float | None
) -> tuple[Outcome, StatusBoard, Poller]:
    """Simulate with the live status line on stdout; the simulation's Outcome."""
    from omnijourney.simulator.command import SimulateOptions, default_start, simulate_to
    from omnijourney.simulator.config import SimulationConfig
    from omnijourney.status_board import Poller, StatusBoard
    from sinks.clickhouse import client

    start = default_start(days, datetime.now(UTC))
    config = SimulationConfig(customers=customers, days=days, start=start, seed=DEMO_SEED)
    options = SimulateOptions(
        customers=customers,
        days=days,
        start=start,
        seed=DEMO_SEED,
        out_truth=settings.path("demo", "truth.jsonl"),
        via_collector=collector_url(settings) if via_collector else None,
        rate=rate,
        write_key=demo_write_key(settings) if via_collector else None,
    )
    # the last day's sessions may run past midnight, and the edge moves times by milliseconds
    end = datetime.fromtimestamp(config.end_ts, UTC) + timedelta(days=1)
    window = {"start": config.start - timedelta(hours=1), "end": end, "since": datetime.now(UTC)}
    ch = client(settings, autogenerate_session_id=False)
    if warning := _earlier_run(ch, options.out_truth, config):
        print(warning)
    poller = Poller(_figures(ch, window)).start()
    board = StatusBoard(sys.stdout, lambda: poller.latest, start=config.start_ts, end=config.end_ts)
    try:
        outcome = simulate_to(settings, options, progress=board)
    finally:
        poller.stop()
        board.end()
    return outcome, board, poller


def _earlier_run(ch: Any, truth_path: Path | None, config: SimulationConfig) -> str | None:
    """A warning when ClickHouse holds another simulation's touchpoints (the evaluation would
    mix them in: the same seed gives other people the same ids)."""
    import orjson

    from omnijourney.simulator.events import iso

    if truth_path is None or not truth_path.exists():
        return None
    with truth_path.open("rb") as lines:
        meta = orjson.loads(lines.readline() or b"{}")
    same = (meta.get("customers"), meta.get("days"), meta.get("seed"), meta.get("start")) == (
        config.customers,
        config.days,
        config.seed,
        iso(config.start_ts),
    )
    stored = int(ch.query("SELECT count() FROM touchpoints").result_rows[0][0])
    if same or stored == 0:
        return None
    return (
        f"warning: ClickHouse already holds {stored:,} touchpoints of an earlier demo "
        f"({meta.get('customers')} customers over {meta.get('days')} days from "
        f"{str(meta.get('start'))[:10]}); the evaluation will count them too. For clean "
        "figures run `omnijourney down` and use a fresh --data-dir."
    )


def _figures(ch: Any, window: dict[str, datetime]) -> Callable[[], PipelineFigures]:
    from omnijourney.status_board import STATUS_SQL, figures_from_rows

    return lambda: figures_from_rows(ch.query(STATUS_SQL, parameters=window).result_rows)


def run(
    settings: Settings,
    customers: int = DEMO_CUSTOMERS,
    days: int = DEMO_DAYS,
    *,
    via_collector: bool = False,
    rate: float | None = None,
) -> int:
    """Start everything, simulate, wait for ClickHouse, report."""
    from omnijourney.status_board import catch_up
    from sinks import reports
    from sinks.clickhouse import client

    worker_health = _start_stack(settings, via_collector)
    where = "through the collector" if via_collector else "into Kafka"
    print(f"\nsimulating {customers:,} customers over {days} days (seed {DEMO_SEED}) {where} ...")
    outcome, board, poller = _simulate(settings, customers, days, via_collector, rate)
    print(outcome.report)

    print("\nwaiting until ClickHouse has caught up ...")
    # Every valid event becomes one touchpoint; malformed records sent to Kafka become dead
    # letters (the collector refuses them at the door instead).
    expected_dead = 0 if via_collector else outcome.tally.malformed
    events = int(outcome.summary.get("events", 0))
    waited = catch_up(
        board,
        poller,
        touchpoints=events,
        dead_letters=expected_dead,
        timeout_s=240.0 + events / 200,
    )
    stored = waited.figures.touchpoints if waited.figures else 0
    if stored <= 0:
        raise ServiceError(
            f"no touchpoint reached ClickHouse; see {background(settings, 'worker').logfile} "
            f"and {background(settings, 'sink').logfile}"
        )
    if waited.complete:
        print(f"clickhouse: caught up in {waited.seconds:.0f} s")
    else:
        print(
            f"clickhouse: {stored:,} of {events:,} touchpoints after {waited.seconds:.0f} s; "
            "reporting on what is there (the pipeline goes on in the background)"
        )
    ch = client(settings)
    print("\n== evaluation against the simulation's ground truth")
    print(_evaluation(ch, outcome.truth_path))
    for name in REPORTS:
        query = reports.saved_query(name)
        print(f"\n== {name}: {query.description.splitlines()[0] if query.description else ''}")
        result = reports.run_report(ch, query, {})
        print(reports.render(result, "table"), end="")
    print("\n" + _html(ch, settings.path("demo", "journeys.html")))
    collector = (
        f", collector at {collector_url(settings)} (write key in "
        f"{settings.path('secrets', 'demo_write_key')})"
        if via_collector
        else ""
    )
    print(
        f"\nThe stack keeps running: Kafka at {settings.kafka.bootstrap}, ClickHouse at "
        f"{settings.clickhouse.url}, worker at {worker_health}{collector}.\n"
        '  query it:      .venv/bin/omnijourney query "SELECT channel, count() FROM touchpoints '
        'GROUP BY channel"\n'
        "  saved reports: .venv/bin/omnijourney report --list\n"
        "  stop it all:   .venv/bin/omnijourney down   (or: make down)"
    )
    return 0
