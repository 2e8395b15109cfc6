"""Effectively-once delivery of protocol messages over at-least-once links.

Every protocol message carries an id: the input position that produced it (source log,
offset) and its index among that step's outputs. A source log is read in offset order and
its outputs to one key travel in order, so a receiving key keeps, per source, the highest id
it applied (its `Inbox`) and drops anything at or below it.

This is what makes a replay harmless when the adapter keeps one rule: a step's outputs are
durable before its state is. After a crash, a key whose state was saved skips the replayed
message (its id is in the inbox), whose outputs are out already; a key whose state was not
saved replays the message against the state it had, and the deterministic core produces the
same outputs with the same ids, which their receivers drop if they had them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple


class MessageId(NamedTuple):
    """Where a message came from: (source log, offset in it, index among its outputs)."""

    source: str
    offset: int
    position: int
    """Its index among the outputs of that step."""

    def to_list(self) -> list[Any]:
        """JSON-ready form."""
        return [self.source, self.offset, self.position]

    @classmethod
    def from_list(cls, data: Any) -> MessageId:
        """Inverse of to_list."""
        source, offset, position = data
        return cls(str(source), int(offset), int(position))


class Inbox:
    """Per receiving key: the highest message id applied from each source."""

    __slots__ = ("marks",)

    def __init__(self, marks: dict[str, tuple[int, int]] | None = None) -> None:
        self.marks: dict[str, tuple[int, int]] = marks if marks is not None else {}

    def accept(self, message_id: MessageId) -> bool:
        """Whether the message is new (then it is remembered) or a repeat (dropped)."""
        position = (message_id.offset, message_id.position)
        seen = self.marks.get(message_id.source)
        if seen is not None and position <= seen:
            return False
        self.marks[message_id.source] = position
        return True

    def to_dict(self) -> dict[str, list[int]]:
        """JSON-ready form."""
        return {source: [offset, index] for source, (offset, index) in self.marks.items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Inbox:
        """Inverse of to_dict."""
        return cls({str(source): (int(pos[0]), int(pos[1])) for source, pos in data.items()})
