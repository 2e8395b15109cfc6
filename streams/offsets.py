"""Which offset a partition may commit, from its acked offsets: pure, no Faust, no I/O.

Faust's own bookkeeping (`Consumer._new_offset`) removes the acked offsets it is about to
commit before the commit is confirmed. When that commit fails because the group rebalanced
("already rebalanced", which Faust swallows) those offsets are neither committed nor acked
any more: after the rebalance the partition's commit waits forever for offsets that will
never be acked again, and its lag grows without bound (the takeover stall of decision 0018).
Here acked offsets are only forgotten once Kafka has confirmed a commit past them.
"""

from __future__ import annotations

from collections.abc import Iterable


def commit_point(
    confirmed: int | None, acked: Iterable[int], gaps: Iterable[tuple[int, int]] = ()
) -> tuple[int | None, list[int]]:
    """(the offset to commit or None, the acked offsets to keep) of one partition.

    `confirmed` is Kafka's committed offset (the next offset to read; None if unknown),
    `acked` the offsets processed since (in any order, repeats allowed), `gaps` the
    half-open ranges of offsets that hold no message (transaction markers, compaction).
    The commit point is the end of the run of consecutive offsets that starts at the
    confirmed offset; one missing offset at the head is tolerated, as Faust does, because
    a transaction marker right after a seek is not recorded as a gap.
    """
    done = set(acked)
    for begin, end in gaps:
        done.update(range(begin, end))
    keep = sorted(o for o in done if confirmed is None or o >= confirmed)
    if not keep:
        return None, []
    start = keep[0] if confirmed is None else confirmed
    if keep[0] > start + 1:
        return None, keep  # the head is not acked yet
    end = keep[0]
    for offset in keep:
        if offset != end:
            break
        end += 1
    return (end if end > start else None), keep


def hole(
    confirmed: int | None,
    acked: Iterable[int],
    in_flight: Iterable[int],
    gaps: Iterable[tuple[int, int]] = (),
) -> int | None:
    """The offset a partition should be read again from, if its commit waits on a hole.

    A hole: offsets after the confirmed commit were acked, the head was not, and no message
    still being processed covers it, so no ack will ever fill it (Faust lost track of those
    messages in a rebalance). Reading again from the confirmed offset fills it; the repeats
    are harmless (decision 0010). None when the partition can commit or will.
    """
    if confirmed is None:
        return None
    point, keep = commit_point(confirmed, acked, gaps)
    if point is not None or not keep:
        return None
    first_acked = keep[0]
    if any(confirmed <= offset < first_acked for offset in in_flight):
        return None  # the head is being processed: its ack will come
    return confirmed
