"""Batching by count and age, one partition's batches in order, exact replay after a crash."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from sinks.batches import Buffers, PartitionBuffer, parse_marker, pending_marker
from sinks.rows import ALIASES, TOUCHPOINTS, TableRow, deduplication_token

TP = ("journeys.touchpoints", 1)


def rows(offset: int) -> list[TableRow]:
    return [(TOUCHPOINTS, (f"row-{offset}",))]


def test_markers_round_trip() -> None:
    assert parse_marker(pending_marker(41)) == 41
    assert parse_marker("") is None
    assert parse_marker(None) is None
    assert parse_marker("pending:x") is None
    assert parse_marker("someone else's metadata") is None


def test_a_batch_is_due_by_count_or_age() -> None:
    buffers = Buffers(max_records=3, interval=1.0)
    buffers.assign(TP, None)
    buffers.add(TP, 10, rows(10), 100, now=0.0)
    buffers.add(TP, 11, rows(11), 100, now=0.1)
    assert buffers.take(0.5) is None
    assert buffers.next_due() == 1.0
    batch = buffers.take(1.0)
    assert batch is not None
    assert (batch.first_offset, batch.last_offset, batch.records, batch.size) == (10, 11, 2, 200)
    assert batch.rows == {TOUCHPOINTS: [("row-10",), ("row-11",)]}
    assert batch.token(TOUCHPOINTS) == deduplication_token(*TP, 10, 11, TOUCHPOINTS)
    buffers.finished(batch)
    for offset in (12, 13, 14):
        buffers.add(TP, offset, rows(offset), 1, now=5.0)
    full = buffers.take(5.0)
    assert full is not None and (full.first_offset, full.last_offset) == (12, 14)


def test_one_batch_of_a_partition_at_a_time() -> None:
    buffers = Buffers(max_records=1, interval=1.0)
    buffers.assign(TP, None)
    buffers.add(TP, 0, rows(0), 1, now=0.0)
    first = buffers.take(0.0)
    buffers.add(TP, 1, rows(1), 1, now=0.0)
    assert first is not None and buffers.take(9.0) is None  # the first is still in flight
    assert buffers.held() == (2, 2)
    buffers.finished(first)
    second = buffers.take(9.0)
    assert second is not None and second.first_offset == 1


def test_the_oldest_partition_goes_first() -> None:
    other = ("journeys.touchpoints", 2)
    buffers = Buffers(max_records=100, interval=1.0)
    buffers.assign(TP, None)
    buffers.assign(other, None)
    buffers.add(other, 5, rows(5), 1, now=0.0)
    buffers.add(TP, 7, rows(7), 1, now=0.5)
    batch = buffers.take(2.0)
    assert batch is not None and (batch.topic, batch.partition) == other


def test_replay_rebuilds_exactly_the_pending_batch() -> None:
    buffer = PartitionBuffer(*TP, replay_until=12)
    for offset in (10, 11):
        buffer.add(offset, rows(offset), 1, now=0.0)
    # neither age nor count closes a batch that must end at 12
    assert buffer.take(100.0, max_records=1, interval=0.0) is None
    buffer.add(12, rows(12), 1, now=100.0)
    buffer.add(13, rows(13), 1, now=100.0)
    replayed = buffer.take(100.0, max_records=1000, interval=99.0)
    assert replayed is not None and (replayed.first_offset, replayed.last_offset) == (10, 12)
    assert buffer.replay_until is None
    buffer.finished(replayed)
    assert buffer.open is not None and buffer.open.first_offset == 13


def test_a_marker_beyond_the_log_is_dropped() -> None:
    # records 10..12 were deleted by retention: the first record read is past the marker
    buffer = PartitionBuffer(*TP, replay_until=12)
    buffer.add(20, rows(20), 1, now=0.0)
    assert buffer.replay_until is None
    batch = buffer.take(1.0, max_records=10, interval=1.0)
    assert batch is not None and (batch.first_offset, batch.last_offset) == (20, 20)


def test_a_gap_before_the_marker_end_closes_the_replay() -> None:
    # offsets 11..12 were transaction markers: the pending batch ended with record 10
    buffer = PartitionBuffer(*TP, replay_until=12)
    buffer.add(10, rows(10), 1, now=0.0)
    buffer.add(13, rows(13), 1, now=0.0)
    batch = buffer.take(0.0, max_records=10, interval=5.0)
    assert batch is not None and (batch.first_offset, batch.last_offset) == (10, 10)


def test_revoked_partitions_are_abandoned() -> None:
    buffers = Buffers(max_records=1, interval=1.0)
    buffers.assign(TP, None)
    buffers.add(TP, 0, rows(0), 1, now=0.0)
    batch = buffers.take(0.0)
    assert batch is not None
    buffers.revoke(TP)
    assert batch.abandoned
    assert buffers.held() == (0, 0)
    assert not buffers.add(TP, 1, rows(1), 1, now=0.0)  # records of a lost partition are dropped
    buffers.finished(batch)  # harmless


def test_alias_ids_of_a_batch() -> None:
    buffers = Buffers(max_records=10, interval=0.0)
    buffers.assign(TP, None)
    buffers.add(TP, 0, [(ALIASES, ("c5", "c1", True, "e"))], 1, now=0.0)
    buffers.add(TP, 1, [(ALIASES, ("c9", "c5", True, "e"))], 1, now=0.0)
    batch = buffers.take(0.0)
    assert batch is not None and batch.alias_ids() == ["c1", "c5", "c9"]


def test_draining_takes_batches_that_are_not_due() -> None:
    buffers = Buffers(max_records=100, interval=60.0)
    buffers.assign(TP, None)
    buffers.add(TP, 0, rows(0), 1, now=0.0)
    assert buffers.take(1.0) is None
    assert buffers.take(1.0, everything=True) is not None


@given(
    offsets=st.lists(st.integers(0, 3), min_size=1, max_size=40).map(
        lambda gaps: [sum(gaps[: i + 1]) + i for i in range(len(gaps))]
    ),
    cuts=st.lists(st.booleans(), min_size=40, max_size=40),
    crash=st.integers(0, 39),
)
def test_any_crash_replays_the_same_batch(offsets: list[int], cuts: list[bool], crash: int) -> None:
    """Whatever the timing of the first run, the replay rebuilds the pending batch exactly."""
    first_run = PartitionBuffer(*TP)
    batches = []
    for index, offset in enumerate(offsets):
        first_run.add(offset, rows(offset), 1, now=float(index))
        if cuts[index]:  # the flusher happens to look now
            batch = first_run.take(float(index), max_records=1000, interval=0.0)
            if batch is not None:
                batches.append(batch)
                first_run.finished(batch)
    if not batches:
        return
    pending = batches[crash % len(batches)]
    # committed: offset first with the marker; the restart reads from there
    replay = PartitionBuffer(*TP, replay_until=pending.last_offset)
    for index, offset in enumerate(o for o in offsets if o >= pending.first_offset):
        replay.add(offset, rows(offset), 1, now=1000.0 + index)
    rebuilt = replay.take(10_000.0, max_records=1, interval=0.0)
    assert rebuilt is not None
    assert (rebuilt.first_offset, rebuilt.last_offset) == (
        pending.first_offset,
        pending.last_offset,
    )
    assert rebuilt.rows == pending.rows
    assert rebuilt.token(TOUCHPOINTS) == pending.token(TOUCHPOINTS)


def test_a_record_delivered_twice_is_added_once() -> None:
    buffers = Buffers(max_records=10, interval=0.0)
    buffers.assign(TP, None)
    for offset in (3, 4, 4, 2, 5):
        buffers.add(TP, offset, rows(offset), 1, now=0.0)
    batch = buffers.take(0.0)
    assert batch is not None and batch.records == 3
    assert batch.rows[TOUCHPOINTS] == [("row-3",), ("row-4",), ("row-5",)]
