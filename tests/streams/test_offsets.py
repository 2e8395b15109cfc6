"""The commit point of a partition: never past an unprocessed message, and a failed commit
loses nothing (the takeover stall of decision 0018)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from streams.offsets import commit_point, hole


@st.composite
def partitions(draw: st.DrawFn) -> tuple[int, list[int], list[tuple[int, int]], set[int]]:
    """(confirmed offset, messages after it, gap ranges between them, acked messages)."""
    confirmed = draw(st.integers(0, 1000))
    offset, messages, gaps = confirmed, [], []
    for _ in range(draw(st.integers(0, 40))):
        if draw(st.integers(0, 5)) == 0:  # a transaction marker or a compacted stretch
            length = draw(st.integers(1, 3))
            gaps.append((offset, offset + length))
            offset += length
        messages.append(offset)
        offset += 1
    acked = set(draw(st.lists(st.sampled_from(messages), unique=True))) if messages else set()
    return confirmed, messages, gaps, acked


@given(partitions(), st.integers(1, 3))
def test_the_commit_point_never_passes_a_message_not_acked(case, repeats) -> None:
    confirmed, messages, gaps, acked = case
    point, _ = commit_point(confirmed, sorted(acked) * repeats, gaps)
    if point is not None:
        assert point > confirmed
        # Faust's tolerance: the head itself may be a marker that was not recorded as a gap.
        assert all(m in acked for m in messages if confirmed < m < point)


@given(partitions())
def test_when_every_message_is_acked_everything_commits(case) -> None:
    confirmed, messages, gaps, _ = case
    point, _ = commit_point(confirmed, messages, gaps)
    ends = [m + 1 for m in messages] + [end for _, end in gaps]
    assert point == (max(ends) if messages else None)


@given(partitions())
def test_a_commit_that_fails_can_be_retried_with_the_same_result(case) -> None:
    confirmed, _, gaps, acked = case
    point, keep = commit_point(confirmed, acked, gaps)
    # Kafka refused the commit (the group rebalanced): nothing was forgotten.
    assert commit_point(confirmed, keep) == (point, keep)


@given(partitions())
def test_offsets_below_a_confirmed_commit_are_forgotten(case) -> None:
    confirmed, _, gaps, acked = case
    point, keep = commit_point(confirmed, acked, gaps)
    if point is not None:
        _, after = commit_point(point, keep)
        assert all(offset >= point for offset in after)
        assert set(after) == {offset for offset in keep if offset >= point}


def test_a_hole_at_the_head_holds_the_commit_and_keeps_what_is_acked() -> None:
    # The stall this prevents: 10942..10968 were taken by a commit that the rebalance refused.
    point, keep = commit_point(10942, range(10969, 11410))
    assert point is None
    assert keep == list(range(10969, 11410))
    point, _ = commit_point(10942, [*range(10942, 10969), *keep])
    assert point == 11410


def test_a_hole_nobody_is_processing_is_read_again_from_the_commit() -> None:
    assert hole(1000, range(1002, 1186), in_flight=[]) == 1000
    assert hole(1000, range(1002, 1186), in_flight=[1000]) is None  # its ack will come
    assert hole(1000, range(1000, 1186), in_flight=[]) is None  # it can commit
    assert hole(1000, [], in_flight=[]) is None  # nothing acked: nothing waits
    assert hole(1000, range(1002, 1186), in_flight=[], gaps=[(1000, 1002)]) is None
    assert hole(None, range(1002, 1186), in_flight=[]) is None  # unknown commit: no guess


@given(partitions(), st.data())
def test_no_rewind_while_the_head_can_still_be_acked(case, data) -> None:
    confirmed, messages, gaps, acked = case
    pending = [m for m in messages if m not in acked]
    in_flight = data.draw(st.lists(st.sampled_from(pending), unique=True)) if pending else []
    rewind = hole(confirmed, acked, in_flight, gaps)
    if rewind is not None:
        assert rewind == confirmed
        point, keep = commit_point(confirmed, acked, gaps)
        assert point is None  # only when the commit is stuck
        assert not [m for m in in_flight if m < keep[0]]  # and nothing in flight fills it
