"""Batches of the sink: per Kafka partition, by rows and time, replayable after a crash (pure).

A batch is the records [first, last] of one partition. Before its rows are inserted, the sink
commits the partition's offset `first` with the metadata `pending:<last>`; after the insert it
commits `last + 1`. A sink that dies in between leaves the marker behind, and whoever owns the
partition next rebuilds exactly [first, last] (the `replay_until` of its buffer), so the
insert repeats with the same deduplication tokens and ClickHouse drops it.

Time is passed in (monotonic seconds); nothing here does I/O.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Final

from sinks.rows import ALIASES, Row, TableRow, deduplication_token

_PENDING: Final = re.compile(r"^pending:(\d+)$")

TopicPartition = tuple[str, int]


def pending_marker(last: int) -> str:
    """The commit metadata saying that the batch ending at `last` may have been inserted."""
    return f"pending:{last}"


def parse_marker(metadata: str | None) -> int | None:
    """The last offset of a pending batch from commit metadata (None: nothing pending)."""
    match = _PENDING.match(metadata or "")
    return int(match.group(1)) if match else None


@dataclass
class Batch:
    """Rows of consecutive records of one partition, grouped by table."""

    topic: str
    partition: int
    opened_at: float
    first_offset: int = -1
    last_offset: int = -1
    records: int = 0
    size: int = 0
    """Bytes of the records (what memory is bounded by)."""
    rows: dict[str, list[Row]] = field(default_factory=dict)
    closed: bool = False
    """No more records join it (a replayed batch that reached its end)."""
    abandoned: bool = False
    """Its partition was revoked: never commit it."""

    def add(self, offset: int, table_rows: list[TableRow], size: int) -> None:
        """Add one record's rows."""
        if self.first_offset < 0:
            self.first_offset = offset
        self.last_offset = offset
        self.records += 1
        self.size += size
        for table, row in table_rows:
            self.rows.setdefault(table, []).append(row)

    def token(self, table: str) -> str:
        """The deduplication token of this batch's insert into `table`."""
        return deduplication_token(
            self.topic, self.partition, self.first_offset, self.last_offset, table
        )

    def alias_ids(self) -> list[str]:
        """Customer ids named by the batch's merges (aliases and survivors), sorted."""
        ids = {row[0] for row in self.rows.get(ALIASES, ())}
        ids |= {row[1] for row in self.rows.get(ALIASES, ())}
        return sorted(ids)

    def due(self, now: float, max_records: int, interval: float) -> bool:
        """Whether the batch should be inserted now."""
        return self.closed or self.records >= max_records or now - self.opened_at >= interval


@dataclass
class PartitionBuffer:
    """What one partition has read but not yet committed."""

    topic: str
    partition: int
    replay_until: int | None = None
    """Last offset of a pending batch to rebuild exactly (from the commit marker)."""
    open: Batch | None = None
    queue: deque[Batch] = field(default_factory=deque)
    """Closed batches waiting for their turn (one partition's batches go in order)."""
    in_flight: Batch | None = None
    last_offset: int = -1
    """Offset of the last record added."""

    def add(self, offset: int, table_rows: list[TableRow], size: int, now: float) -> None:
        """Add one record read from the partition (one already added is ignored)."""
        if offset <= self.last_offset:
            return  # delivered twice (a fetch from before a seek): never double a row
        self.last_offset = offset
        until = self.replay_until
        if until is not None and offset > until:
            # Past the pending batch: close it; a marker beyond what exists is stale.
            self.replay_until = None
            self._close()
        if self.open is None:
            self.open = Batch(self.topic, self.partition, now)
        self.open.add(offset, table_rows, size)
        if until is not None and offset == until:
            self.replay_until = None
            self._close()

    def _close(self) -> None:
        if self.open is not None:
            self.open.closed = True
            self.queue.append(self.open)
            self.open = None

    def take(self, now: float, max_records: int, interval: float) -> Batch | None:
        """The next batch to insert, if one is due and none of this partition is in flight."""
        if self.in_flight is not None:
            return None
        if self.queue:
            batch = self.queue.popleft()
        elif (
            self.open is not None
            and self.replay_until is None
            and self.open.due(now, max_records, interval)
        ):
            batch, self.open = self.open, None
        else:
            return None
        self.in_flight = batch
        return batch

    def finished(self, batch: Batch) -> None:
        """The batch is in ClickHouse and committed (or abandoned)."""
        if self.in_flight is batch:
            self.in_flight = None

    def next_due(self, max_records: int, interval: float) -> float | None:
        """When the open batch becomes due (monotonic seconds); None if nothing waits on time."""
        if self.in_flight is not None or self.queue:
            return None
        if self.open is None or self.replay_until is not None:
            return None
        if self.open.records >= max_records:
            return self.open.opened_at
        return self.open.opened_at + interval

    def batches(self) -> Iterator[Batch]:
        """Every batch held: in flight, queued, open."""
        if self.in_flight is not None:
            yield self.in_flight
        yield from self.queue
        if self.open is not None:
            yield self.open


@dataclass
class Buffers:
    """The buffers of every assigned partition, and the memory they hold."""

    max_records: int
    interval: float
    partitions: dict[TopicPartition, PartitionBuffer] = field(default_factory=dict)

    def assign(self, tp: TopicPartition, replay_until: int | None) -> None:
        """Start buffering a newly assigned partition."""
        self.partitions[tp] = PartitionBuffer(tp[0], tp[1], replay_until)

    def revoke(self, tp: TopicPartition) -> None:
        """Forget a revoked partition; its batch in flight must not be committed."""
        buffer = self.partitions.pop(tp, None)
        if buffer is not None:
            for batch in buffer.batches():
                batch.abandoned = True

    def add(
        self, tp: TopicPartition, offset: int, rows: list[TableRow], size: int, now: float
    ) -> bool:
        """Add a record; False when the partition is no longer assigned (record dropped)."""
        buffer = self.partitions.get(tp)
        if buffer is None:
            return False
        buffer.add(offset, rows, size, now)
        return True

    def take(self, now: float, *, everything: bool = False) -> Batch | None:
        """The oldest due batch of any partition (everything: also batches not yet due)."""
        interval = 0.0 if everything else self.interval
        candidates = []
        for buffer in self.partitions.values():
            if buffer.in_flight is not None:
                continue
            head = buffer.queue[0] if buffer.queue else buffer.open
            if head is not None:
                candidates.append((head.opened_at, buffer))
        for _, buffer in sorted(candidates, key=lambda item: item[0]):
            batch = buffer.take(now, self.max_records, interval)
            if batch is not None:
                return batch
        return None

    def finished(self, batch: Batch) -> None:
        """The batch is done with (committed or abandoned)."""
        buffer = self.partitions.get((batch.topic, batch.partition))
        if buffer is not None:
            buffer.finished(batch)

    def next_due(self) -> float | None:
        """The earliest time a batch becomes due by age."""
        times = [
            due
            for buffer in self.partitions.values()
            if (due := buffer.next_due(self.max_records, self.interval)) is not None
        ]
        return min(times, default=None)

    def held(self) -> tuple[int, int]:
        """(records, bytes) held in every batch not yet committed."""
        records = size = 0
        for buffer in self.partitions.values():
            for batch in buffer.batches():
                records += batch.records
                size += batch.size
        return records, size
