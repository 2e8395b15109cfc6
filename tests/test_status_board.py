"""The demo's live status line: its text, in place on a terminal, whole lines otherwise, the
wait for ClickHouse, and its query against the real embedded ClickHouse."""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from omnijourney.settings import Settings
from omnijourney.status_board import (
    STATUS_SQL,
    PipelineFigures,
    Poller,
    StatusBoard,
    catch_up,
    figures_from_rows,
    status_line,
)
from sinks.clickhouse import client
from sinks.migrations import migrate

FIGURES = PipelineFigures(10_234, 1_234, 456, 78, 12)


class Terminal(io.StringIO):
    """A stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


class Clock:
    """A hand-driven monotonic clock."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_the_line_says_what_was_sent_and_stored() -> None:
    line = status_line(sent=12_345, rate=4321.4, fraction=0.45, stored=FIGURES)
    assert line == (
        "sent 12,345 at 4,321 events/s (45%) | stored 10,234 | journeys 1,234 open, "
        "456 converted | merges 78 | dead letters 12"
    )
    waiting = status_line(sent=5, rate=1.0, fraction=1.7, stored=None)
    assert waiting == "sent 5 at 1 events/s (100%) | clickhouse: waiting for the first figures"
    done = status_line(
        sent=9, rate=0, fraction=None, stored=FIGURES, expected=20_000, stored_rate=950.2
    )
    assert done.startswith("sent 9 (done) | stored 10,234 of 20,000 at 950/s | journeys")


def test_on_a_terminal_the_line_is_rewritten_in_place_and_never_wraps() -> None:
    clock, out = Clock(), Terminal()
    board = StatusBoard(out, lambda: FIGURES, start=0, end=100, monotonic=clock, width=lambda: 60)
    board.update(10, 50)
    clock.now += 0.1
    board.update(20, 60)  # too soon: not shown
    clock.now += 1
    board.update(30, 70)
    board.end()
    text = out.getvalue()
    assert text.count("\r") == 2 and text.endswith("\x1b[K\n") and "\n" not in text[:-1]
    assert all(len(part.split("\x1b[K")[0]) <= 59 for part in text.split("\r")[1:])
    assert "sent 30" in text and "sent 20" not in text


def test_elsewhere_whole_lines_every_few_seconds() -> None:
    clock, out = Clock(), io.StringIO()
    board = StatusBoard(out, lambda: None, start=0, end=100, monotonic=clock)
    for sent in range(1, 40):
        clock.now += 0.5
        board.update(sent, sent)
    board.update(40, 100, final=True)
    board.end()
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue()
    assert len(lines) == 5  # at 0.5 s, every 5 s after, and the final one
    assert lines[-1].startswith("sent 40 at 2 events/s (100%)")


def test_catching_up_waits_for_every_touchpoint_and_dead_letter_and_settled_figures() -> None:
    clock, out = Clock(), io.StringIO()
    series = iter(
        [
            PipelineFigures(50, 5, 0, 0, 0),
            PipelineFigures(100, 9, 1, 2, 1),  # every touchpoint, a dead letter missing
            PipelineFigures(100, 9, 1, 3, 2),
            PipelineFigures(100, 8, 2, 3, 2),  # merges still re-version journeys
            *[PipelineFigures(100, 8, 2, 3, 2)] * 10,
        ]
    )
    poller = Poller(lambda: next(series), interval=1.0)
    board = StatusBoard(out, lambda: poller.latest, monotonic=clock)
    done = catch_up(board, poller, touchpoints=100, dead_letters=2, timeout_s=60, sleep=clock.sleep)
    assert done.complete and done.figures == PipelineFigures(100, 8, 2, 3, 2)
    assert poller.polls == 7  # four changing reads, then three equal ones
    assert "stored 100 of 100" in out.getvalue().splitlines()[-1]


def test_catching_up_gives_up_when_nothing_changes_any_more() -> None:
    clock = Clock()
    poller = Poller(lambda: PipelineFigures(98, 3, 1, 0, 0), interval=1.0)
    board = StatusBoard(io.StringIO(), lambda: poller.latest, monotonic=clock)
    done = catch_up(
        board, poller, touchpoints=100, dead_letters=0, timeout_s=600, stall_s=20, sleep=clock.sleep
    )
    assert not done.complete and done.figures == PipelineFigures(98, 3, 1, 0, 0)
    assert 20 <= done.seconds < 25


def test_catching_up_gives_up_after_the_timeout_and_survives_errors() -> None:
    clock = Clock()

    def broken() -> PipelineFigures:
        raise ConnectionError("ClickHouse went away")

    poller = Poller(broken, interval=1.0)
    board = StatusBoard(io.StringIO(), lambda: poller.latest, monotonic=clock)
    done = catch_up(board, poller, touchpoints=1, dead_letters=0, timeout_s=5, sleep=clock.sleep)
    assert not done.complete and done.figures is None and done.seconds >= 5
    assert poller.error is not None and "ClickHouse went away" in poller.error


@pytest.fixture
def database(clickhouse_settings: Settings) -> Iterator[Settings]:
    name = f"status_{uuid.uuid4().hex[:10]}"
    settings = clickhouse_settings.model_copy(
        update={"clickhouse": clickhouse_settings.clickhouse.model_copy(update={"database": name})}
    )
    migrate(settings)
    yield settings
    admin = client(settings, database="default", autogenerate_session_id=False)
    admin.command(f"DROP DATABASE IF EXISTS `{name}`")
    admin.close()


@pytest.mark.clickhouse
def test_the_status_query_on_the_sink_tables(database: Settings) -> None:
    ch = client(database, autogenerate_session_id=False)
    try:
        ch.command(
            "INSERT INTO touchpoints (event_id, occurred_at, version) VALUES "
            "('e1', '2026-03-02 10:00:00', 1), ('e1', '2026-03-02 10:00:00', 2), "
            "('e2', '2026-03-03 10:00:00', 1), ('old', '2026-01-01 10:00:00', 1)"
        )
        ch.command(
            "INSERT INTO journeys (journey_id, status, version, started_at) VALUES "
            "('j1', 'open', 1, '2026-03-02'), ('j1', 'converted', 2, '2026-03-02'), "
            "('j2', 'open', 1, '2026-03-02'), ('j3', 'open', 1, '2026-03-02'), "
            "('j3', 'superseded', 2, '2026-03-02')"
        )
        ch.command(
            "INSERT INTO identity_merges (alias_id, survivor_id) VALUES ('c2', 'c1'), ('c3', 'c1')"
        )
        # recent receive times: the table's retention (TTL) drops old rows at once
        ch.command(
            "INSERT INTO dead_letters (dead_letter_id, received_at) VALUES "
            "('d1', now64() - INTERVAL 1 DAY), ('d0', now64() - INTERVAL 10 DAY)"
        )
        window = {
            "start": datetime(2026, 3, 1, tzinfo=UTC),
            "end": datetime(2026, 3, 4, tzinfo=UTC),
            "since": datetime.now(UTC) - timedelta(days=2),
        }
        figures = figures_from_rows(ch.query(STATUS_SQL, parameters=window).result_rows)
    finally:
        ch.close()
    # two events of the window (one in two versions), one journey open and one converted
    # (the superseded one counts as neither), two merged customers, one dead letter since then
    assert figures == PipelineFigures(2, 1, 1, 2, 1)
