"""Effectively-once delivery: the inbox accepts each message once, whatever the replays."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from streams.core.delivery import Inbox, MessageId


@st.composite
def replayed(draw: st.DrawFn) -> tuple[list[MessageId], list[MessageId]]:
    """Per source, outputs in order; delivered at least once: crashes re-send a suffix."""
    sent: list[MessageId] = []
    delivered: list[MessageId] = []
    for source in draw(st.lists(st.sampled_from("vic"), min_size=1, max_size=3, unique=True)):
        ids = [
            MessageId(source, offset, position)
            for offset in range(draw(st.integers(1, 8)))
            for position in range(draw(st.integers(1, 3)))
        ]
        sent += ids
        stream, done = [], 0
        while done < len(ids):
            upto = draw(st.integers(done + 1, len(ids)))
            stream += ids[done:upto]
            # A crash: the sender replays from an earlier committed point.
            done = draw(st.integers(0, upto)) if draw(st.booleans()) else upto
        delivered += stream
    return sent, delivered


@given(replayed())
def test_every_message_is_accepted_exactly_once_in_order(case) -> None:
    sent, delivered = case
    inbox = Inbox()
    accepted = [message for message in delivered if inbox.accept(message)]
    for source in {message.source for message in sent}:
        assert [m for m in accepted if m.source == source] == [
            m for m in sent if m.source == source
        ]


@given(replayed())
def test_the_inbox_survives_its_json_form(case) -> None:
    _, delivered = case
    inbox = Inbox()
    for message in delivered:
        inbox.accept(message)
    again = Inbox.from_dict(inbox.to_dict())
    assert again.marks == inbox.marks
    assert not any(again.accept(message) for message in delivered)
    assert MessageId.from_list(delivered[0].to_list()) == delivered[0]
