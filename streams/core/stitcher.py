"""The step functions an adapter calls: one per key kind, deterministic, no I/O.

`Stitcher.admit(touch)` says what a new touch becomes: with analytics consent, a message to
its strongest identifier (`Stitcher.route`); without, an anonymous record and consent notices
to its identifiers' owners, nothing linked or stored (decision 0016). Then:

* identifier-keyed step (state: `IdentifierState`, the owning customer): an unowned identifier
  that routes a touch creates its customer (id from the identifier and the touch time, so a
  replay gives the same ids); a claim on it succeeds if it is unowned, or answers with the
  owner (a merge proposal); a repoint moves it to the customer that absorbed its owner.
* customer-keyed step (state: `CustomerState`): a live customer places touches in its
  sessions and journeys and claims the touch's other identifiers, within the limits; two
  customers that meet merge: the younger one freezes (buffering what arrives), hands its whole
  state to the older one, which absorbs it (the younger becomes an alias that forwards) or
  rejects it because the union would break a limit (the younger thaws and goes on). Waits only
  ever point at strictly older customers, so they cannot form a cycle.

Each step takes ownership of the state it is given and returns the new one (the same object,
changed in place, for speed), the output records and the messages to send; `Send.key` names
the key (in `Send.topic`) whose partition must receive the message.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Final

from omnijourney.exceptions import ProtocolViolation
from streams.core.config import CoreConfig
from streams.core.identity import IdentifierState, Profile
from streams.core.ids import customer_id
from streams.core.journeys import Timeline, TimelineRules
from streams.core.messages import (
    Assign,
    Claim,
    Conflict,
    ConsentNotice,
    CustomerErased,
    CustomerMessage,
    EraseCustomer,
    EraseIdentifier,
    Granted,
    Handover,
    IdentifierErased,
    IdentifierMessage,
    MergeAccepted,
    MergeRejected,
    Message,
    Propose,
    Repoint,
    Route,
    Send,
    Tick,
    Topic,
    message_from_dict,
    message_to_dict,
)
from streams.core.model import Identifier, Touch, micros
from streams.core.records import AnonymousTouchpoint, IdentityLink, LinkRejection, Merge, Record

EMBRYO: Final = "embryo"
"""Known to exist (someone learned its id) before its creating touch arrived: buffers."""
LIVE: Final = "live"
FROZEN: Final = "frozen"
"""Handed its state to an older customer; buffers until the merge is accepted or rejected."""
ALIAS: Final = "alias"
"""Merged into an older customer: forwards everything to it."""
ERASED: Final = "erased"
"""Forgotten by an erasure request: the step returns no state, the adapter deletes the key."""

IDENTIFIER: Final = Topic.IDENTIFIER
CUSTOMER: Final = Topic.CUSTOMER
ERASURE: Final = Topic.ERASURE
_new = tuple.__new__  # builds a named tuple without its Python-level __new__


class CustomerState:
    """State of one customer key: a live profile with its timeline, or an alias."""

    __slots__ = ("buffer", "customer_id", "epoch", "merged_into", "profile", "status", "timeline")

    def __init__(self, customer_id: str) -> None:
        self.customer_id = customer_id
        self.status: str = EMBRYO
        self.profile: Profile | None = None
        self.timeline: Timeline | None = None
        self.buffer: list[CustomerMessage] = []
        self.merged_into = ""
        self.epoch = 0
        """Counts the merges this customer offered, to match the answer to the offer."""

    @property
    def live_profile(self) -> Profile:
        """The profile of a live (or frozen) customer."""
        if self.profile is None:
            raise ProtocolViolation(f"{self.customer_id}: no profile while {self.status}")
        return self.profile

    @property
    def live_timeline(self) -> Timeline:
        """The timeline of a live (or frozen) customer."""
        if self.timeline is None:
            raise ProtocolViolation(f"{self.customer_id}: no timeline while {self.status}")
        return self.timeline

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (what a changelogged table stores)."""
        data: dict[str, Any] = {
            "customer_id": self.customer_id,
            "status": self.status,
            "merged_into": self.merged_into,
            "epoch": self.epoch,
            "buffer": [message_to_dict(message) for message in self.buffer],
        }
        if self.profile is not None and self.timeline is not None:
            data["profile"] = self.profile.to_dict()
            data["timeline"] = self.timeline.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], rules: TimelineRules) -> CustomerState:
        """Inverse of to_dict."""
        state = cls(str(data["customer_id"]))
        state.status = str(data["status"])
        state.merged_into = str(data["merged_into"])
        state.epoch = int(data["epoch"])
        state.buffer = [_customer_message(item) for item in data["buffer"]]
        if "profile" in data:
            state.profile = Profile.from_dict(data["profile"])
            state.timeline = Timeline.from_dict(data["timeline"], rules)
        return state


def _customer_message(data: Mapping[str, Any]) -> CustomerMessage:
    message = message_from_dict(data)
    if isinstance(message, Route | Claim | Repoint | EraseIdentifier | IdentifierErased
                  | CustomerErased):  # fmt: skip
        raise ProtocolViolation(f"{type(message).__name__}: not a customer message")
    return message


class _Effects:
    """What one step produces."""

    __slots__ = ("records", "sends")

    def __init__(self) -> None:
        self.records: list[Record] = []
        self.sends: list[Send] = []


IdentifierStep = tuple[IdentifierState | None, list[Record], list[Send]]
"""(state, records, sends); a None state: the key has no state (after an erasure: delete it)."""
CustomerStep = tuple[CustomerState | None, list[Record], list[Send]]
"""(state, records, sends); a None state: the key was erased (delete it)."""


class Stitcher:
    """Identity resolution and stitching as two per-key state machines (see module doc)."""

    def __init__(self, config: CoreConfig | None = None) -> None:
        self.config = config or CoreConfig()
        self.rules = TimelineRules.of(self.config)
        identifiers = self.config.identifiers
        self._priority = {kind: rule.priority for kind, rule in identifiers.items()}
        self._limits = {kind: rule.max_per_customer for kind, rule in identifiers.items()}
        self._blocked = {kind: rule.blocked for kind, rule in identifiers.items()}
        self._order = sorted(identifiers, key=lambda kind: -self._priority[kind])

    # --- entry ---------------------------------------------------------------------------------

    def rank(self, identifier: Identifier) -> tuple[int, str, str]:
        """Sort key putting the strongest identifier first (ties by kind, then value)."""
        return (-self._priority[identifier.kind], identifier.kind, identifier.value)

    def admit(self, touch: Touch) -> tuple[list[Record], list[Send]]:
        """What a new touch becomes: a route to its customer, or (no analytics consent) an
        anonymous record plus a consent notice to each usable identifier's owner, if any."""
        if touch.consent.analytics:
            return [], [self.route(touch)]
        consent, at, event = touch.consent, touch.occurred_at, touch.event_id
        notices = [
            Send(IDENTIFIER, identifier.key, ConsentNotice(identifier, consent, at, event))
            for identifier in touch.identities
            if identifier.value not in self._blocked[identifier.kind]
        ]
        return [AnonymousTouchpoint(touch)], notices

    def route(self, touch: Touch) -> Send:
        """Where a new touch goes: its strongest usable identifier (junk values set aside)."""
        identities = touch.identities
        if len(identities) == 1:  # the common case, without the general bookkeeping
            primary = identities[0]
            if primary.value not in self._blocked[primary.kind]:
                return _new(Send, (IDENTIFIER, primary.key, _new(Route, (touch, primary, (), ()))))
        usable: list[Identifier] = []
        blocked: list[Identifier] = []
        for identifier in touch.identities:
            if identifier.value in self._blocked[identifier.kind]:
                blocked.append(identifier)
            else:
                usable.append(identifier)
        if not usable:
            # Nobody to link it to: it becomes its own customer, named after the event.
            owner = customer_id(f"event:{touch.event_id}", touch.occurred_us)
            return Send(CUSTOMER, owner, Assign(touch, None, (), tuple(blocked), True))
        if len(usable) > 1:
            usable.sort(key=self.rank)
        primary = usable[0]
        return Send(
            IDENTIFIER, primary.key, Route(touch, primary, tuple(usable[1:]), tuple(blocked))
        )

    # --- identifier-keyed stage ----------------------------------------------------------------

    def identifier_step(
        self, key: str, state: IdentifierState | None, message: IdentifierMessage
    ) -> IdentifierStep:
        """Handle one message for an identifier key."""
        kind = type(message)
        if kind is Route:
            assert isinstance(message, Route)
            touch = message.touch
            create = state is None
            if state is None:
                state = IdentifierState(customer_id(key, touch.occurred_us))
            assign = (touch, message.primary, message.others, message.blocked, create)
            return state, [], [_new(Send, (CUSTOMER, state.owner, _new(Assign, assign)))]
        if kind is Claim:
            assert isinstance(message, Claim)
            claimer = message.claimer
            if state is None:
                state = IdentifierState(claimer)
            if state.owner == claimer:
                answer: Message = Granted(message.identifier, claimer, message.event_id)
            else:
                answer = Conflict(message.identifier, state.owner, message.event_id)
            return state, [], [Send(CUSTOMER, claimer, answer)]
        if kind is ConsentNotice:
            if state is None:
                return None, [], []  # an unknown identifier is not stored for a mere notice
            return state, [], [Send(CUSTOMER, state.owner, message)]
        if kind is Repoint:
            assert isinstance(message, Repoint)
            if state is None:
                raise ProtocolViolation(f"{key}: repoint of an identifier nobody owns")
            # Owners only ever move to older customers, so the smallest id is the newest owner
            # (repoints from a chain of merges may arrive in any order).
            state.owner = min(state.owner, message.owner)
            return state, [], []
        if kind is EraseIdentifier:
            assert isinstance(message, EraseIdentifier)
            # Idempotent: an unknown key answers with nothing removed.
            owner, removed = ("", 0) if state is None else (state.owner, 1)
            answer = IdentifierErased(message.request_id, key, owner, removed)
            return None, [], [Send(ERASURE, message.request_id, answer)]
        raise ProtocolViolation(f"{key}: {kind.__name__} is not an identifier message")

    # --- customer-keyed stage ------------------------------------------------------------------

    def customer_step(
        self, key: str, state: CustomerState | None, message: CustomerMessage
    ) -> CustomerStep:
        """Handle one message for a customer key."""
        effects = _Effects()
        if state is None:
            if type(message) is EraseCustomer:  # nothing known: nothing to remove
                answer = CustomerErased(message.request_id, key, 0, "", (), ())
                return None, [], [Send(ERASURE, message.request_id, answer)]
            state = CustomerState(key)
        elif state.status == LIVE and type(message) is Assign and not message.create:
            self._touch(state, message, effects)  # the hot path, straight
            return state, effects.records, effects.sends
        self._deliver(state, message, effects)
        if state.status == ERASED:
            return None, effects.records, effects.sends
        return state, effects.records, effects.sends

    def tick(self, state: CustomerState, now: datetime) -> CustomerStep:
        """Processing time moved on (an adapter's timer): same as delivering Tick(now)."""
        return self.customer_step(state.customer_id, state, Tick(now))

    def identifier_from_dict(self, data: Mapping[str, Any]) -> IdentifierState:
        """Load an identifier state stored with to_dict."""
        return IdentifierState.from_dict(data)

    def customer_from_dict(self, data: Mapping[str, Any]) -> CustomerState:
        """Load a customer state stored with to_dict."""
        return CustomerState.from_dict(data, self.rules)

    def _deliver(self, state: CustomerState, message: CustomerMessage, fx: _Effects) -> None:
        status = state.status
        if type(message) is EraseCustomer and status != FROZEN:
            # A frozen customer waits for its merge's answer with the erasure buffered: then it
            # is forwarded to the survivor (accepted) or handled here (rejected).
            self._erase(state, message, fx)
        elif status == LIVE:
            _LIVE[type(message)](self, state, message, fx)
        elif status == ALIAS:
            self._forward(state, message, fx)
        elif type(message) is Tick:
            return  # not live: the next tick will do
        elif status == EMBRYO:
            if isinstance(message, Assign) and message.create:
                self._create(state, message, fx)
                self._drain(state, fx)
            else:
                state.buffer.append(message)
        elif isinstance(message, MergeAccepted | MergeRejected):
            self._answer(state, message, fx)
        else:
            state.buffer.append(message)

    def _erase(self, state: CustomerState, message: EraseCustomer, fx: _Effects) -> None:
        """Forget the customer; tell the coordinator which keys of the person it knew."""
        profile = state.profile
        aliases: tuple[str, ...] = ()
        identifiers: tuple[Identifier, ...] = ()
        if profile is not None:
            aliases = tuple(sorted(profile.aliases))
            identifiers = (*profile.identifiers(), *profile.claimed())
        answer = CustomerErased(
            message.request_id, state.customer_id, 1, state.merged_into, aliases, identifiers
        )
        fx.sends.append(Send(ERASURE, message.request_id, answer))
        # What it buffered is the person's too; what it produced stays out (the coordinator
        # removes it from the outputs).
        state.status, state.profile, state.timeline, state.buffer = ERASED, None, None, []

    def _drain(self, state: CustomerState, fx: _Effects) -> None:
        """Process buffered messages in order while the customer is live."""
        while state.status == LIVE and state.buffer:
            self._deliver(state, state.buffer.pop(0), fx)

    def _forward(self, state: CustomerState, message: CustomerMessage, fx: _Effects) -> None:
        if isinstance(message, MergeAccepted | MergeRejected):
            raise ProtocolViolation(f"{state.customer_id}: merge answer to an alias")
        if isinstance(message, Assign) and message.create and message.primary is not None:
            raise ProtocolViolation(f"{state.customer_id}: created after it was merged")
        if not isinstance(message, Tick):
            fx.sends.append(Send(CUSTOMER, state.merged_into, message))

    def _create(self, state: CustomerState, message: Assign, fx: _Effects) -> None:
        state.status = LIVE
        state.profile = Profile()
        state.timeline = Timeline(state.customer_id, self.rules)
        if message.primary is not None:
            state.profile.hold(message.primary)
            fx.records.append(
                IdentityLink(state.customer_id, message.primary, message.touch.event_id)
            )
        self._touch(state, message, fx)

    def _on_assign(self, state: CustomerState, message: Assign, fx: _Effects) -> None:
        if message.create and message.primary is not None:
            raise ProtocolViolation(f"{state.customer_id}: created twice")
        self._touch(state, message, fx)

    def _touch(self, state: CustomerState, message: Assign, fx: _Effects) -> None:
        """Place the touch in the journeys and claim its other identifiers."""
        touch = message.touch
        timeline = state.timeline
        if timeline is None:
            raise ProtocolViolation(f"{state.customer_id}: a touch while {state.status}")
        event = touch.event_id
        if event in timeline.seen:
            return  # a duplicate changes nothing
        fx.records.extend(timeline.add(touch))
        me = state.customer_id
        for identifier in message.blocked:
            rule = f"blocked:{identifier.kind}"
            fx.records.append(LinkRejection(me, identifier, rule, event, None))
        for identifier in message.others:
            self._link(state, identifier, event, fx)

    def _link(self, state: CustomerState, identifier: Identifier, event: str, fx: _Effects) -> None:
        """Claim an identifier seen with this customer's, unless a limit or a conflict forbids."""
        profile = state.live_profile
        if profile.knows(identifier):
            if not profile.holds(identifier):
                profile.wait(identifier, event)
            return
        me = state.customer_id
        conflict = profile.conflicts.get(identifier.key)
        if conflict is not None:
            fx.records.append(LinkRejection(me, identifier, conflict[0], event, conflict[1]))
            return
        kind = identifier.kind
        if profile.count(kind) >= self._limits[kind]:
            fx.records.append(LinkRejection(me, identifier, f"limit:{kind}", event, None))
            return
        profile.claim(identifier)
        fx.sends.append(Send(IDENTIFIER, identifier.key, Claim(identifier, me, event)))

    def _on_granted(self, state: CustomerState, message: Granted, fx: _Effects) -> None:
        profile, me, identifier = state.live_profile, state.customer_id, message.identifier
        if not profile.settle(identifier):
            raise ProtocolViolation(f"{me}: grant of {identifier.key} it never claimed")
        profile.decided(identifier)
        if profile.hold(identifier):
            fx.records.append(IdentityLink(me, identifier, message.event_id))
        if message.claimer != me:
            # Claimed by a customer merged into this one since: the identifier points at it.
            fx.sends.append(Send(IDENTIFIER, identifier.key, Repoint(identifier, me)))

    def _on_conflict(self, state: CustomerState, message: Conflict, fx: _Effects) -> None:
        profile, identifier = state.live_profile, message.identifier
        if not profile.settle(identifier):
            raise ProtocolViolation(f"{state.customer_id}: conflict on {identifier.key} unclaimed")
        if profile.holds(identifier):
            profile.decided(identifier)
        else:
            self._on_propose(state, Propose(message.owner, identifier, message.event_id, False), fx)

    def _on_propose(self, state: CustomerState, offer: Propose, fx: _Effects) -> None:
        """Meet another customer: the younger of the two hands its state to the older."""
        me, other = state.customer_id, offer.other
        claimed = not offer.other_claimed
        if other == me:
            state.live_profile.decided(offer.identifier)  # both sides are this customer already
            return
        if me < other:
            proposal = Propose(me, offer.identifier, offer.event_id, claimed)
            fx.sends.append(Send(CUSTOMER, other, proposal))
            return
        state.status = FROZEN
        state.epoch += 1
        handover = Handover(
            me,
            state.epoch,
            state.live_profile,
            state.live_timeline,
            offer.identifier,
            offer.event_id,
            claimed,
        )
        fx.sends.append(Send(CUSTOMER, other, handover))

    def _on_handover(self, state: CustomerState, message: Handover, fx: _Effects) -> None:
        """Absorb a younger customer's state, or reject the merge if a limit forbids it."""
        me, loser, identifier, event = (
            state.customer_id,
            message.loser,
            message.identifier,
            message.event_id,
        )
        if not me < loser:
            raise ProtocolViolation(f"{me}: handover from older customer {loser}")
        profile = state.live_profile
        theirs = message.profile
        kind = profile.violation(theirs, self._limits, self._order)
        if kind:
            rule = f"limit:{kind}"
            if message.loser_claimed:
                fx.records.append(LinkRejection(loser, identifier, rule, event, me))
            else:
                fx.records.append(LinkRejection(me, identifier, rule, event, loser))
                self._remember(state, identifier, rule, loser, fx)
            answer = MergeRejected(me, message.epoch, identifier, rule, message.loser_claimed)
            fx.sends.append(Send(CUSTOMER, loser, answer))
            return
        profile.absorb(theirs)
        profile.aliases.add(loser)
        for key in list(profile.waiting):
            kind, _, value = key.partition(":")
            if profile.holds(Identifier(kind, value)):
                del profile.waiting[key]
        fx.records.append(Merge(me, loser, identifier, f"link:{identifier.kind}", event))
        timeline = message.timeline
        if not isinstance(timeline, Timeline):
            timeline = Timeline.from_dict(timeline, self.rules)
        fx.records.extend(state.live_timeline.absorb(timeline))
        fx.sends.append(Send(CUSTOMER, loser, MergeAccepted(me, message.epoch)))
        for moved in theirs.identifiers():
            fx.sends.append(Send(IDENTIFIER, moved.key, Repoint(moved, me)))

    def _answer(
        self, state: CustomerState, message: MergeAccepted | MergeRejected, fx: _Effects
    ) -> None:
        """The survivor answered a frozen customer's handover."""
        if message.epoch != state.epoch:
            raise ProtocolViolation(f"{state.customer_id}: answer to merge offer {message.epoch}")
        if isinstance(message, MergeAccepted):
            state.status = ALIAS
            state.merged_into = message.survivor
            state.profile = None
            state.timeline = None
            buffered, state.buffer = state.buffer, []
            for held in buffered:
                self._forward(state, held, fx)
            return
        state.status = LIVE
        if message.remember:
            self._remember(state, message.identifier, message.rule, message.survivor, fx)
        self._drain(state, fx)

    def _remember(
        self, state: CustomerState, identifier: Identifier, rule: str, holder: str, fx: _Effects
    ) -> None:
        """The claimer's side of a rejected merge: reject later links to it locally."""
        profile, me = state.live_profile, state.customer_id
        profile.conflicts.setdefault(identifier.key, (rule, holder))
        for waited in profile.decided(identifier):
            fx.records.append(LinkRejection(me, identifier, rule, waited, holder))

    def _on_notice(self, state: CustomerState, message: ConsentNotice, fx: _Effects) -> None:
        at = micros(message.at, "at")
        fx.records.extend(state.live_timeline.notice(message.consent, at, message.event_id))

    def _on_tick(self, state: CustomerState, message: Tick, fx: _Effects) -> None:
        fx.records.extend(state.live_timeline.advance(micros(message.now, "now")))

    def _unexpected(self, state: CustomerState, message: CustomerMessage, fx: _Effects) -> None:
        raise ProtocolViolation(f"{state.customer_id}: {type(message).__name__} while live")


# What a live customer does with each message (plain functions: a table of bound methods
# would make every Stitcher a reference cycle, and the state must stay free of cycles so a
# worker can gc.freeze() it).
_LIVE: dict[type, Callable[[Stitcher, CustomerState, Any, _Effects], None]] = {
    Assign: Stitcher._on_assign,
    Granted: Stitcher._on_granted,
    Conflict: Stitcher._on_conflict,
    Propose: Stitcher._on_propose,
    Handover: Stitcher._on_handover,
    Tick: Stitcher._on_tick,
    ConsentNotice: Stitcher._on_notice,
    MergeAccepted: Stitcher._unexpected,
    MergeRejected: Stitcher._unexpected,
}
