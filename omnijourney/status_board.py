"""The demo's live status line: what the simulator sent and what the pipeline has stored so far.

One line, refreshed in place (`\\r`) on a terminal and printed every few seconds otherwise:

    sent 12,345 at 4,321 events/s (45%) | stored 10,234 | journeys 1,234 open, 456 converted |
    merges 78 | dead letters 12

The figures of the pipeline are read from ClickHouse (the sink's tables) by a background
thread, so a slow query never holds up the simulator; the simulator's own tally comes in
through `update`, the hook its delivery calls after each record (`delivery.ProgressSink`).
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import IO, Any, Final

STATUS_SQL: Final = """
SELECT
    (SELECT uniqExact(event_id) FROM touchpoints
      WHERE occurred_at >= {start:DateTime64(6, 'UTC')}
        AND occurred_at < {end:DateTime64(6, 'UTC')}),
    (SELECT (countIf(status = 'open'), countIf(status = 'converted'))
       FROM (SELECT argMax(status, version) AS status FROM journeys GROUP BY journey_id)),
    (SELECT uniqExact(alias_id) FROM identity_merges),
    (SELECT uniqExact(dead_letter_id) FROM dead_letters
      WHERE received_at >= {since:DateTime64(6, 'UTC')})
"""
"""One row: distinct touchpoints that occurred in [start, end) (the simulated days: a demo run
again sends the same events, which the pipeline drops as duplicates), (open, converted)
journeys as of their latest version, customers merged into another, dead letters received
since `since` (malformed records are not deduplicated)."""


@dataclass(frozen=True, slots=True)
class PipelineFigures:
    """What the pipeline has stored in ClickHouse."""

    touchpoints: int = 0
    journeys_open: int = 0
    journeys_converted: int = 0
    merges: int = 0
    dead_letters: int = 0


def figures_from_rows(rows: Sequence[Sequence[Any]]) -> PipelineFigures:
    """The figures from STATUS_SQL's result rows."""
    touchpoints, (opened, converted), merges, dead = rows[0]
    return PipelineFigures(int(touchpoints), int(opened), int(converted), int(merges), int(dead))


def status_line(
    *,
    sent: int,
    rate: float,
    fraction: float | None,
    stored: PipelineFigures | None,
    expected: int | None = None,
    stored_rate: float | None = None,
) -> str:
    """The status line; `fraction` None: sending is over; `stored` None: nothing read yet."""
    if fraction is None:
        head = f"sent {sent:,} (done)"
    else:
        head = f"sent {sent:,} at {rate:,.0f} events/s ({min(max(fraction, 0.0), 1.0):.0%})"
    if stored is None:
        return f"{head} | clickhouse: waiting for the first figures"
    tail = f"stored {stored.touchpoints:,}"
    if expected is not None:
        tail += f" of {expected:,}"
    if stored_rate is not None:
        tail += f" at {stored_rate:,.0f}/s"
    return (
        f"{head} | {tail} | journeys {stored.journeys_open:,} open, "
        f"{stored.journeys_converted:,} converted | merges {stored.merges:,} | "
        f"dead letters {stored.dead_letters:,}"
    )


class Poller:
    """Reads the pipeline's figures in a background thread, every `interval` seconds."""

    def __init__(self, fetch: Callable[[], PipelineFigures], interval: float = 1.0) -> None:
        self.fetch = fetch
        self.interval = interval
        self.latest: PipelineFigures | None = None
        self.error: str | None = None
        self.polls = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="status-poller", daemon=True)

    def start(self) -> Poller:
        """Start polling."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop polling (waits for a query in flight)."""
        self._stop.set()
        self._thread.join(timeout=30)

    def poll(self) -> PipelineFigures | None:
        """Read the figures now (also what the thread does); the last good ones on an error."""
        try:
            self.latest = self.fetch()
            self.error = None
        except Exception as exc:
            self.error = f"{type(exc).__name__}: {exc}"[:200]
        self.polls += 1
        return self.latest

    def _run(self) -> None:
        while not self._stop.is_set():
            self.poll()
            self._stop.wait(self.interval)


def _terminal_width() -> int:
    return shutil.get_terminal_size((120, 24)).columns


class StatusBoard:
    """Writes the status line: in place on a terminal, one line every `every` s otherwise."""

    def __init__(
        self,
        stream: IO[str],
        figures: Callable[[], PipelineFigures | None],
        *,
        start: int = 0,
        end: int = 1,
        every: float | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        width: Callable[[], int] = _terminal_width,
    ) -> None:
        self.stream = stream
        self.figures = figures
        self.start, self.span = start, max(1, end - start)
        self.interactive = stream.isatty()
        self.every = every if every is not None else (0.5 if self.interactive else 5.0)
        self.monotonic = monotonic
        self.width = width
        self.started = monotonic()
        self.last_shown = -float("inf")
        self.sent = 0
        self.rate = 0.0
        self.open_line = False

    # --- the simulator's hook (delivery.ProgressSink) ---------------------------------------

    def update(self, sent: int, simulated: int, *, final: bool = False) -> None:
        """The simulator sent `sent` records, the latest of simulated time `simulated`."""
        now = self.monotonic()
        self.sent = sent
        elapsed = now - self.started
        self.rate = sent / elapsed if elapsed > 0 else 0.0
        if final or now - self.last_shown >= self.every:
            fraction = 1.0 if final else (simulated - self.start) / self.span
            self.show(
                status_line(sent=sent, rate=self.rate, fraction=fraction, stored=self.figures()),
                now,
            )

    # --- writing ----------------------------------------------------------------------------

    def show(self, line: str, now: float | None = None) -> None:
        """Write the line (in place on a terminal, cut to its width so it never wraps)."""
        self.last_shown = self.monotonic() if now is None else now
        if self.interactive:
            self.stream.write(f"\r{line[: max(20, self.width() - 1)]}\x1b[K")
            self.open_line = True
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def due(self) -> bool:
        """Whether the next line is due."""
        return self.monotonic() - self.last_shown >= self.every

    def end(self) -> None:
        """Finish the line in place (a terminal) so what follows starts on a new line."""
        if self.open_line:
            self.stream.write("\n")
            self.stream.flush()
            self.open_line = False


@dataclass(frozen=True, slots=True)
class CatchUp:
    """How waiting for ClickHouse ended."""

    figures: PipelineFigures | None
    complete: bool
    """Every expected touchpoint and dead letter arrived and the figures settled."""
    seconds: float


def catch_up(
    board: StatusBoard,
    poller: Poller,
    *,
    touchpoints: int,
    dead_letters: int,
    timeout_s: float,
    stall_s: float = 60.0,
    settle_polls: int = 3,
    sleep: Callable[[float], None] = time.sleep,
) -> CatchUp:
    """Wait until ClickHouse holds the expected touchpoints and dead letters and the figures
    stop changing (merges and late touches still re-version journeys), showing the line.

    Gives up after `timeout_s`, or once nothing changed for `stall_s` (what is missing then
    is not on its way)."""
    monotonic = board.monotonic
    started = changed = monotonic()
    seen: list[tuple[float, PipelineFigures]] = []
    steady = 0
    figures = poller.latest
    while monotonic() - started < timeout_s and monotonic() - changed < stall_s:
        figures = poller.poll()
        now = monotonic()
        if figures is not None:
            steady = steady + 1 if seen and seen[-1][1] == figures else 0
            if steady == 0:
                changed = now
            seen = [*seen[-4:], (now, figures)]
        if board.due() or steady >= settle_polls:
            board.show(_catch_up_line(board, figures, touchpoints, seen), now)
        arrived = figures is not None and (
            figures.touchpoints >= touchpoints and figures.dead_letters >= dead_letters
        )
        if arrived and steady >= settle_polls:
            board.end()
            return CatchUp(figures, True, monotonic() - started)
        sleep(poller.interval)
    board.end()
    return CatchUp(figures, False, monotonic() - started)


def _catch_up_line(
    board: StatusBoard,
    figures: PipelineFigures | None,
    expected: int,
    seen: Iterable[tuple[float, PipelineFigures]],
) -> str:
    window = list(seen)
    rate = None
    if len(window) >= 2 and window[-1][0] > window[0][0]:
        (t0, first), (t1, last) = window[0], window[-1]
        rate = (last.touchpoints - first.touchpoints) / (t1 - t0)
    return status_line(
        sent=board.sent,
        rate=board.rate,
        fraction=None,
        stored=figures,
        expected=expected,
        stored_rate=rate,
    )
