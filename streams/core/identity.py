"""Identity state: which customer owns an identifier, and what a customer's profile holds.

The protocol that moves between them lives in `stitcher`; here are the two states and the
merge-protection arithmetic (limits count held identifiers plus outstanding claims, so no
interleaving of claims and merges can ever push a live profile over a limit).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from streams.core.model import Identifier


class IdentifierState:
    """State of one identifier key: the customer that owns it (maybe an alias by now)."""

    __slots__ = ("owner",)

    def __init__(self, owner: str) -> None:
        self.owner = owner

    def to_dict(self) -> dict[str, str]:
        """JSON-ready form."""
        return {"owner": self.owner}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> IdentifierState:
        """Inverse of to_dict."""
        return cls(str(data["owner"]))


class Profile:
    """Identifiers a live customer holds, those it is claiming, and the conflicts it knows."""

    __slots__ = ("aliases", "conflicts", "held", "pending", "waiting")

    def __init__(self) -> None:
        self.aliases: set[str] = set()
        """Customers merged into this one (directly or through a merged profile): an erasure
        of the person must reach their keys too."""
        self.held: dict[str, set[str]] = {}
        """kind -> values owned."""
        self.pending: dict[str, dict[str, int]] = {}
        """kind -> value -> claims still unanswered (a merge can bring a second one)."""
        self.conflicts: dict[str, tuple[str, str]] = {}
        """identifier key -> (rule, other customer): a merge with its owner was rejected."""
        self.waiting: dict[str, list[str]] = {}
        """identifier key -> later touches that carried it while its claim was unanswered
        (if the claim ends in a rejection, their links are rejected too, and recorded)."""

    def holds(self, identifier: Identifier) -> bool:
        """Whether the identifier is owned."""
        values = self.held.get(identifier.kind)
        return values is not None and identifier.value in values

    def knows(self, identifier: Identifier) -> bool:
        """Whether the identifier is owned or being claimed."""
        if self.holds(identifier):
            return True
        claims = self.pending.get(identifier.kind)
        return claims is not None and identifier.value in claims

    def count(self, kind: str) -> int:
        """Identifiers of a kind held or being claimed (what a limit is checked against)."""
        held = self.held.get(kind, set())
        claims = self.pending.get(kind)
        if not claims:
            return len(held)
        return len(held) + sum(1 for value in claims if value not in held)

    def hold(self, identifier: Identifier) -> bool:
        """Own the identifier; False if it already was."""
        values = self.held.setdefault(identifier.kind, set())
        if identifier.value in values:
            return False
        values.add(identifier.value)
        return True

    def claim(self, identifier: Identifier) -> None:
        """Count a claim sent for the identifier."""
        claims = self.pending.setdefault(identifier.kind, {})
        claims[identifier.value] = claims.get(identifier.value, 0) + 1

    def settle(self, identifier: Identifier) -> bool:
        """One claim on the identifier was answered; False if none was outstanding."""
        claims = self.pending.get(identifier.kind)
        if claims is None or identifier.value not in claims:
            return False
        left = claims[identifier.value] - 1
        if left:
            claims[identifier.value] = left
        else:
            del claims[identifier.value]
            if not claims:
                del self.pending[identifier.kind]
        return True

    def wait(self, identifier: Identifier, event_id: str) -> None:
        """Another touch links the identifier while its claim is still unanswered."""
        self.waiting.setdefault(identifier.key, []).append(event_id)

    def decided(self, identifier: Identifier) -> list[str]:
        """The claim was decided: the touches that waited for it (forgotten now)."""
        return self.waiting.pop(identifier.key, [])

    def violation(self, other: Profile, limits: Mapping[str, int], order: Sequence[str]) -> str:
        """The first kind (strongest first) whose limit the union would break, or ''."""
        for kind in order:
            values = set(self.held.get(kind, ())) | other.held.get(kind, set())
            values.update(self.pending.get(kind, ()), other.pending.get(kind, ()))
            if len(values) > limits[kind]:
                return kind
        return ""

    def absorb(self, other: Profile) -> None:
        """Take over everything of a merged profile (checked with `violation` first)."""
        for kind, values in other.held.items():
            self.held.setdefault(kind, set()).update(values)
        for kind, claims in other.pending.items():
            mine = self.pending.setdefault(kind, {})
            for value, count in claims.items():
                mine[value] = mine.get(value, 0) + count
        for key, conflict in other.conflicts.items():
            self.conflicts.setdefault(key, conflict)
        for key, events in other.waiting.items():
            self.waiting.setdefault(key, []).extend(events)
        self.aliases |= other.aliases

    def identifiers(self) -> Iterator[Identifier]:
        """Every owned identifier, in a deterministic order."""
        for kind in sorted(self.held):
            for value in sorted(self.held[kind]):
                yield Identifier(kind, value)

    def claimed(self) -> Iterator[Identifier]:
        """Every identifier with a claim outstanding, in a deterministic order."""
        for kind in sorted(self.pending):
            for value in sorted(self.pending[kind]):
                yield Identifier(kind, value)

    def is_settled(self) -> bool:
        """No claim is outstanding."""
        return not self.pending and not self.waiting

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (sorted, so equal profiles serialize equally)."""
        data: dict[str, Any] = {
            "held": {kind: sorted(values) for kind, values in sorted(self.held.items())},
            "pending": {kind: dict(sorted(c.items())) for kind, c in sorted(self.pending.items())},
            "conflicts": {key: list(value) for key, value in sorted(self.conflicts.items())},
            "waiting": {key: list(events) for key, events in sorted(self.waiting.items())},
        }
        if self.aliases:  # absent until a merge, so states stored before it read the same
            data["aliases"] = sorted(self.aliases)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Profile:
        """Inverse of to_dict."""
        profile = cls()
        profile.held = {kind: set(values) for kind, values in data["held"].items()}
        profile.pending = {
            kind: {value: int(count) for value, count in claims.items()}
            for kind, claims in data["pending"].items()
        }
        profile.conflicts = {
            key: (str(rule), str(other)) for key, (rule, other) in data["conflicts"].items()
        }
        profile.waiting = {key: list(events) for key, events in data["waiting"].items()}
        profile.aliases = {str(alias) for alias in data.get("aliases", ())}
        return profile
