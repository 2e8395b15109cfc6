"""Erasure of one person, coordinated per request id: resolve every key, then confirm stores.

The coordinator's state (`Erasure`, keyed by request id) drives a message-driven fixpoint over
the identity protocol: it asks every identifier of the request to forget itself
(`EraseIdentifier`); each answer names the identifier's owner, which is asked in turn
(`EraseCustomer`); a customer's answer names the customer it was merged into, the customers
merged into it and every identifier it held or was claiming, which are asked too. Each key is
asked once, so the fixpoint ends; every stage deletes its own key's state and counts it.

Then the adapter confirms the other stores in phases, each driven by a message the
coordinator sends itself (so a restart resumes where it stopped):

* `Settle`: the stages have committed past every erase message (a replay of an older message
  could otherwise bring a deleted key back), then the public tombstones are written;
* `Sweep`: the ClickHouse sink has consumed past the tombstones, then ClickHouse is erased;
* `Seal`: the receipt is built from this state and the Seal (deterministic: a replay rebuilds
  the same receipt), published and stored; the state shrinks to a `done` marker that holds no
  personal data, so a repeated request is recognized and not erased twice.

Pure: no I/O, time passed in.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any, Final, NamedTuple

from omnijourney.exceptions import ProtocolViolation
from streams.core.delivery import MessageId
from streams.core.messages import (
    CustomerErased,
    EraseCustomer,
    EraseIdentifier,
    ErasureAnswer,
    IdentifierErased,
    Message,
    Send,
    Topic,
    message_from_dict,
    message_to_dict,
)
from streams.core.model import iso, parse_time

RESOLVING: Final = "resolving"
"""Asking keys to forget themselves; waiting for answers."""
SETTLING: Final = "settling"
"""Every key answered: waiting until the stages committed past the erase messages."""
SWEEPING: Final = "sweeping"
"""Tombstones out: waiting for the sink, then ClickHouse."""
SEALING: Final = "sealing"
"""ClickHouse erased: the receipt is being published."""
DONE: Final = "done"
"""Receipt out: only the request id and its completion time are kept."""

IDENTIFIERS_STORE: Final = "identifiers"
"""Logical name of the identifier table's store (the adapter names its changelog)."""
CUSTOMERS_STORE: Final = "customers"
"""Logical name of the customer table's store."""


class Start(NamedTuple):
    """A new erasure request (identifier keys `kind:value`, emails and phones as hashes)."""

    request_id: str
    identifier_keys: tuple[str, ...]
    suppress_future: bool


class Settle(NamedTuple):
    """Check whether the stages committed past the erase messages (`attempt`: for back-off)."""

    request_id: str
    attempt: int


class Sweep(NamedTuple):
    """Check whether the sink consumed past the tombstones, then erase ClickHouse."""

    request_id: str
    attempt: int


class Seal(NamedTuple):
    """ClickHouse confirmed: rows removed per table and when; the receipt is built from it."""

    request_id: str
    rows_removed: Mapping[str, int]
    completed_at: datetime


ControlMessage = Start | Settle | Sweep | Seal
ErasureMessage = ControlMessage | ErasureAnswer
Outgoing = Send | Settle | Sweep | Seal
"""What a coordinator step emits: a Send to a stage, or a message to its own request key."""


class StoreDone(NamedTuple):
    """One store's confirmation (a receipt line)."""

    store: str
    keys_removed: int
    rows_removed: int
    completed_at: datetime


class Erasure:
    """Progress of one erasure request (holds the person's keys until it is done)."""

    __slots__ = (
        "customers",
        "finished_at",
        "identifiers",
        "marks",
        "phase",
        "positions",
        "removed",
        "request_id",
        "started_at",
        "stores",
        "suppress_future",
    )

    def __init__(self, request_id: str, started_at: datetime, suppress_future: bool) -> None:
        self.request_id = request_id
        self.started_at = started_at
        self.suppress_future = suppress_future
        self.phase = RESOLVING
        self.identifiers: dict[str, bool] = {}
        """identifier key -> answered."""
        self.customers: dict[str, bool] = {}
        """customer id -> answered."""
        self.removed = {IDENTIFIERS_STORE: 0, CUSTOMERS_STORE: 0}
        """State entries deleted per table."""
        self.positions: dict[str, int] = {}
        """Stage source (`i3`, `c1`) -> highest offset of an erase message processed there."""
        self.marks: dict[str, int] = {}
        """`topic:partition` -> end offset the sink must have committed before ClickHouse."""
        self.stores: list[StoreDone] = []
        self.finished_at: datetime | None = None

    # --- resolution ----------------------------------------------------------------------------

    @property
    def resolved(self) -> bool:
        """Every key asked has answered."""
        return all(self.identifiers.values()) and all(self.customers.values())

    def customer_ids(self) -> list[str]:
        """The person's customer ids (the customer and every alias), sorted."""
        return sorted(self.customers)

    def identifier_keys(self) -> list[str]:
        """The person's identifier keys, sorted."""
        return sorted(self.identifiers)

    def _ask_identifier(self, key: str, sends: list[Outgoing]) -> None:
        if key and key not in self.identifiers:
            self.identifiers[key] = False
            sends.append(Send(Topic.IDENTIFIER, key, EraseIdentifier(self.request_id)))

    def _ask_customer(self, customer: str, sends: list[Outgoing]) -> None:
        if customer and customer not in self.customers:
            self.customers[customer] = False
            sends.append(Send(Topic.CUSTOMER, customer, EraseCustomer(self.request_id)))

    def _settle_if_resolved(self, now: datetime, sends: list[Outgoing]) -> None:
        if self.phase == RESOLVING and self.resolved:
            self.phase = SETTLING
            for store in (IDENTIFIERS_STORE, CUSTOMERS_STORE):
                self.stores.append(StoreDone(store, self.removed[store], 0, now))
            sends.append(Settle(self.request_id, 0))

    # --- later phases --------------------------------------------------------------------------

    def published(
        self, tombstones: Mapping[str, int], marks: Mapping[str, int], now: datetime
    ) -> Sweep:
        """Tombstones are out (count per topic store name); wait for the sink next."""
        if self.phase != SETTLING:
            raise ProtocolViolation(f"erasure {self.request_id}: published while {self.phase}")
        self.phase = SWEEPING
        self.marks = dict(marks)
        for store, count in tombstones.items():
            self.stores.append(StoreDone(store, count, 0, now))
        return Sweep(self.request_id, 0)

    def swept(self, rows_removed: Mapping[str, int], now: datetime) -> Seal:
        """ClickHouse confirmed: seal with its counts (carried by the Seal, for replays)."""
        if self.phase != SWEEPING:
            raise ProtocolViolation(f"erasure {self.request_id}: swept while {self.phase}")
        self.phase = SEALING
        return Seal(self.request_id, dict(rows_removed), now)

    def receipt_stores(self, seal: Seal, store_of_table: Callable[[str], str]) -> list[StoreDone]:
        """Every store's line of the receipt: state, topics, then ClickHouse tables."""
        tables = [
            StoreDone(store_of_table(table), 0, count, seal.completed_at)
            for table, count in seal.rows_removed.items()
        ]
        return [*self.stores, *tables]

    def seal(self, completed_at: datetime) -> None:
        """The receipt is out: forget the person's keys, keep the fact that it is done."""
        self.phase = DONE
        self.finished_at = completed_at
        self.identifiers, self.customers, self.positions, self.marks = {}, {}, {}, {}
        self.stores = []

    # --- JSON ----------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (a done erasure keeps no personal data)."""
        data: dict[str, Any] = {
            "request_id": self.request_id,
            "phase": self.phase,
            "started_at": iso(self.started_at),
        }
        if self.phase == DONE:
            data["finished_at"] = iso(self.finished_at) if self.finished_at else None
            return data
        data.update(
            suppress_future=self.suppress_future,
            identifiers=dict(sorted(self.identifiers.items())),
            customers=dict(sorted(self.customers.items())),
            removed=dict(self.removed),
            positions=dict(sorted(self.positions.items())),
            marks=dict(sorted(self.marks.items())),
            stores=[_store_list(store) for store in self.stores],
        )
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Erasure:
        """Inverse of to_dict."""
        erasure = cls(
            str(data["request_id"]),
            parse_time(data["started_at"], "started_at"),
            bool(data.get("suppress_future", False)),
        )
        erasure.phase = str(data["phase"])
        if erasure.phase == DONE:
            finished = data.get("finished_at")
            erasure.finished_at = parse_time(finished, "finished_at") if finished else None
            return erasure
        erasure.identifiers = {str(k): bool(v) for k, v in data["identifiers"].items()}
        erasure.customers = {str(k): bool(v) for k, v in data["customers"].items()}
        erasure.removed = {str(k): int(v) for k, v in data["removed"].items()}
        erasure.positions = {str(k): int(v) for k, v in data["positions"].items()}
        erasure.marks = {str(k): int(v) for k, v in data["marks"].items()}
        erasure.stores = [
            StoreDone(str(store), int(keys), int(rows), parse_time(at, "stores.completed_at"))
            for store, keys, rows, at in data["stores"]
        ]
        return erasure


def _store_list(store: StoreDone) -> list[object]:
    return [store.store, store.keys_removed, store.rows_removed, iso(store.completed_at)]


def begin(
    request_id: str, identifier_keys: Iterable[str], suppress_future: bool, now: datetime
) -> tuple[Erasure, list[Outgoing]]:
    """A new erasure: ask every identifier of the request to forget itself."""
    erasure = Erasure(request_id, now, suppress_future)
    sends: list[Outgoing] = []
    for key in sorted(set(identifier_keys)):
        erasure._ask_identifier(key, sends)
    if not sends:
        raise ProtocolViolation(f"erasure {request_id}: no identifier to erase")
    return erasure, sends


def on_answer(
    erasure: Erasure, answer: ErasureAnswer, origin: MessageId | None, now: datetime
) -> list[Outgoing]:
    """A stage forgot a key: count it, ask the keys it named, settle once all answered."""
    sends: list[Outgoing] = []
    if erasure.phase != RESOLVING:
        return sends  # a late repeat: the fixpoint is closed
    if isinstance(answer, IdentifierErased):
        if erasure.identifiers.get(answer.key) is not False:
            return sends  # not asked, or answered already
        erasure.identifiers[answer.key] = True
        erasure.removed[IDENTIFIERS_STORE] += answer.removed
        erasure._ask_customer(answer.owner, sends)
    else:
        if erasure.customers.get(answer.customer) is not False:
            return sends
        erasure.customers[answer.customer] = True
        erasure.removed[CUSTOMERS_STORE] += answer.removed
        erasure._ask_customer(answer.merged_into, sends)
        for alias in answer.aliases:
            erasure._ask_customer(alias, sends)
        for identifier in answer.identifiers:
            erasure._ask_identifier(identifier.key, sends)
    if origin is not None:
        seen = erasure.positions.get(origin.source, -1)
        erasure.positions[origin.source] = max(seen, origin.offset)
    erasure._settle_if_resolved(now, sends)
    return sends


# --- JSON-ready form of the coordinator's own messages -----------------------------------------


def erasure_message_to_dict(message: ErasureMessage) -> dict[str, object]:
    """JSON-ready form of a coordinator message (its own, or a stage's answer)."""
    if isinstance(message, IdentifierErased | CustomerErased):
        return message_to_dict(message)
    data: dict[str, object] = {"message_type": type(message).__name__}
    for name, value in zip(message._fields, message, strict=True):
        data[name] = _plain(value)
    return data


def _plain(value: object) -> object:
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, Mapping):
        return dict(value)
    return value


_DECODERS: dict[str, Callable[[Mapping[str, Any]], ErasureMessage]] = {
    "Start": lambda d: Start(
        str(d["request_id"]),
        tuple(str(key) for key in d["identifier_keys"]),
        bool(d["suppress_future"]),
    ),
    "Settle": lambda d: Settle(str(d["request_id"]), int(d["attempt"])),
    "Sweep": lambda d: Sweep(str(d["request_id"]), int(d["attempt"])),
    "Seal": lambda d: Seal(
        str(d["request_id"]),
        {str(table): int(count) for table, count in d["rows_removed"].items()},
        parse_time(d["completed_at"], "completed_at"),
    ),
}


def erasure_message_from_dict(data: Mapping[str, Any]) -> ErasureMessage:
    """Inverse of erasure_message_to_dict; ProtocolViolation for anything else."""
    decoder = _DECODERS.get(str(data.get("message_type")))
    try:
        if decoder is not None:
            return decoder(data)
    except (KeyError, AttributeError, TypeError, ValueError) as exc:
        raise ProtocolViolation(f"{data.get('message_type')}: malformed ({exc})") from exc
    message: Message = message_from_dict(data)
    if not isinstance(message, IdentifierErased | CustomerErased):
        raise ProtocolViolation(f"{type(message).__name__}: not an erasure message")
    return message
