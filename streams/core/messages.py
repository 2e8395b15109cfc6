"""Messages of the partitioned identity protocol, and the envelope that says where each goes.

Identifier-keyed stage (state: which customer owns the identifier): Route, Claim, Repoint,
ConsentNotice. Customer-keyed stage (state: profile, sessions, journeys): Assign, Granted,
Conflict, Propose, Handover, MergeAccepted, MergeRejected, Tick, ConsentNotice. Erasure
(`streams.core.erasure` coordinates it): EraseIdentifier and EraseCustomer remove a key's state
in the stage that owns it, which answers the coordinator (keyed by request id) with
IdentifierErased / CustomerErased. Each is a named
tuple with a JSON-ready form, so an adapter can carry it through a Kafka topic keyed by
`Send.key`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from enum import StrEnum
from typing import Any, NamedTuple, cast

from omnijourney.exceptions import ProtocolViolation
from streams.core.identity import Profile
from streams.core.journeys import Timeline
from streams.core.model import Consent, Identifier, Touch, iso, parse_time


class Topic(StrEnum):
    """The kind of key a message is routed by (one table and one topic each)."""

    IDENTIFIER = "identifier"
    CUSTOMER = "customer"
    ERASURE = "erasure"
    """Keyed by erasure request id: the answers of the stages to the erasure coordinator."""


# --- identifier-keyed -------------------------------------------------------------------------


class Route(NamedTuple):
    """A new touch, sent to its highest-priority identifier to find (or create) its customer."""

    touch: Touch
    primary: Identifier
    others: tuple[Identifier, ...]
    """The touch's other usable identifiers, strongest first: links to claim."""
    blocked: tuple[Identifier, ...]
    """Identifiers with junk values: recorded as rejected links, never used."""


class Claim(NamedTuple):
    """A customer asks to own an identifier (evidence: a touch carrying both)."""

    identifier: Identifier
    claimer: str
    event_id: str


class Repoint(NamedTuple):
    """The identifier now belongs to this (older) customer, which absorbed its owner."""

    identifier: Identifier
    owner: str


class ConsentNotice(NamedTuple):
    """The consent of a touch without analytics consent (decision 0016).

    Such a touch is never placed or linked; its consent alone goes to the customer that already
    owns the identifier (if nobody does, the identifier step forgets it: nothing is stored), so
    that a withdrawal takes effect. Handled by both stages: the identifier step forwards it.
    """

    identifier: Identifier
    consent: Consent
    at: datetime
    """When the touch occurred: the latest consent by event time wins."""
    event_id: str


# --- customer-keyed ---------------------------------------------------------------------------


class Assign(NamedTuple):
    """A touch for the customer owning its primary identifier (`create`: the first one)."""

    touch: Touch
    primary: Identifier | None
    others: tuple[Identifier, ...]
    blocked: tuple[Identifier, ...]
    create: bool


class Granted(NamedTuple):
    """The claim succeeded: the identifier now belongs to the claimer."""

    identifier: Identifier
    claimer: str
    event_id: str


class Conflict(NamedTuple):
    """The claimed identifier belongs to another customer: the two should merge."""

    identifier: Identifier
    owner: str
    event_id: str


class Propose(NamedTuple):
    """Merge with `other`: the older survives, the younger hands its state over."""

    other: str
    identifier: Identifier
    event_id: str
    other_claimed: bool
    """Whether `other` is the side that claimed the identifier (for the rejection record)."""


class Handover(NamedTuple):
    """The younger customer's whole state, frozen until the survivor accepts or rejects it.

    In one process the state travels by reference: the loser is frozen and never touches it
    again unless the merge is refused, and the survivor only reads it unless it absorbs it.
    Through a topic it travels as JSON and the timeline is loaded by the survivor.
    """

    loser: str
    epoch: int
    profile: Profile
    timeline: Timeline | Mapping[str, Any]
    identifier: Identifier
    event_id: str
    loser_claimed: bool


class MergeAccepted(NamedTuple):
    """The survivor absorbed the loser's state: the loser becomes its alias."""

    survivor: str
    epoch: int


class MergeRejected(NamedTuple):
    """The merge would break a rule: the loser goes on as before."""

    survivor: str
    epoch: int
    identifier: Identifier
    rule: str
    remember: bool
    """The loser claimed the identifier: it remembers the conflict to reject it locally."""


class Tick(NamedTuple):
    """Processing time moved on: expire idle journeys, seal and evict old ones."""

    now: datetime


# --- erasure ------------------------------------------------------------------------------------


class EraseIdentifier(NamedTuple):
    """Forget the identifier key: its state goes; the answer names its owner."""

    request_id: str


class EraseCustomer(NamedTuple):
    """Forget the customer key: its state goes; the answer names what it linked to."""

    request_id: str


class IdentifierErased(NamedTuple):
    """An identifier key was forgotten (`removed`: state entries deleted, 0 or 1)."""

    request_id: str
    key: str
    owner: str
    """The customer that owned it ('' if nobody did)."""
    removed: int


class CustomerErased(NamedTuple):
    """A customer key was forgotten, with the keys of the same person it knew of."""

    request_id: str
    customer: str
    removed: int
    merged_into: str
    """The survivor, if the key was an alias ('' otherwise)."""
    aliases: tuple[str, ...]
    """Customers merged into it."""
    identifiers: tuple[Identifier, ...]
    """Identifiers it held or was claiming."""


IdentifierMessage = Route | Claim | Repoint | ConsentNotice | EraseIdentifier
CustomerMessage = (
    Assign
    | Granted
    | Conflict
    | Propose
    | Handover
    | MergeAccepted
    | MergeRejected
    | Tick
    | ConsentNotice
    | EraseCustomer
)
ErasureAnswer = IdentifierErased | CustomerErased
Message = IdentifierMessage | CustomerMessage | ErasureAnswer


class Send(NamedTuple):
    """A message to deliver to the partition that owns `key` in `topic`."""

    topic: Topic
    key: str
    message: Message


# --- JSON-ready form --------------------------------------------------------------------------


def _ids(values: tuple[Identifier, ...]) -> list[dict[str, str]]:
    return [value.to_dict() for value in values]


def _from_ids(values: object) -> tuple[Identifier, ...]:
    return tuple(Identifier.from_dict(item) for item in cast(list[dict[str, str]], values))


def message_to_dict(message: Message) -> dict[str, object]:
    """JSON-ready form of any protocol message, tagged with its `message_type`."""
    data: dict[str, object] = {"message_type": type(message).__name__}
    for name, value in zip(message._fields, message, strict=True):
        data[name] = _encode(value)
    return data


def _encode(value: object) -> object:
    if isinstance(value, Touch | Identifier | Profile | Timeline | Consent):
        return value.to_dict()
    if isinstance(value, tuple):
        return [_encode(item) for item in value]
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, Mapping):
        return dict(value)
    return value


def _identifier(data: Mapping[str, Any]) -> Identifier:
    return Identifier.from_dict(data["identifier"])


_DECODERS: dict[str, Callable[[Mapping[str, Any]], Message]] = {
    "Route": lambda d: Route(
        Touch.from_dict(d["touch"]),
        Identifier.from_dict(d["primary"]),
        _from_ids(d["others"]),
        _from_ids(d["blocked"]),
    ),
    "Claim": lambda d: Claim(_identifier(d), d["claimer"], d["event_id"]),
    "Repoint": lambda d: Repoint(_identifier(d), d["owner"]),
    "Assign": lambda d: Assign(
        Touch.from_dict(d["touch"]),
        None if d["primary"] is None else Identifier.from_dict(d["primary"]),
        _from_ids(d["others"]),
        _from_ids(d["blocked"]),
        bool(d["create"]),
    ),
    "Granted": lambda d: Granted(_identifier(d), d["claimer"], d["event_id"]),
    "Conflict": lambda d: Conflict(_identifier(d), d["owner"], d["event_id"]),
    "Propose": lambda d: Propose(
        d["other"], _identifier(d), d["event_id"], bool(d["other_claimed"])
    ),
    "Handover": lambda d: Handover(
        d["loser"],
        int(d["epoch"]),
        Profile.from_dict(d["profile"]),
        d["timeline"],
        _identifier(d),
        d["event_id"],
        bool(d["loser_claimed"]),
    ),
    "MergeAccepted": lambda d: MergeAccepted(d["survivor"], int(d["epoch"])),
    "MergeRejected": lambda d: MergeRejected(
        d["survivor"], int(d["epoch"]), _identifier(d), d["rule"], bool(d["remember"])
    ),
    "Tick": lambda d: Tick(parse_time(d["now"], "now")),
    "EraseIdentifier": lambda d: EraseIdentifier(str(d["request_id"])),
    "EraseCustomer": lambda d: EraseCustomer(str(d["request_id"])),
    "IdentifierErased": lambda d: IdentifierErased(
        str(d["request_id"]), str(d["key"]), str(d["owner"]), int(d["removed"])
    ),
    "CustomerErased": lambda d: CustomerErased(
        str(d["request_id"]),
        str(d["customer"]),
        int(d["removed"]),
        str(d["merged_into"]),
        tuple(str(alias) for alias in d["aliases"]),
        _from_ids(d["identifiers"]),
    ),
    "ConsentNotice": lambda d: ConsentNotice(
        _identifier(d), Consent.from_dict(d["consent"]), parse_time(d["at"], "at"), d["event_id"]
    ),
}


def message_from_dict(data: Mapping[str, Any]) -> Message:
    """Inverse of message_to_dict."""
    decoder = _DECODERS.get(str(data.get("message_type")))
    if decoder is None:
        raise ProtocolViolation(f"message_type: unknown {data.get('message_type')!r}")
    try:
        return decoder(data)
    except KeyError as exc:
        raise ProtocolViolation(f"{data['message_type']}.{exc.args[0]}: missing") from exc
