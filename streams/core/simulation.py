"""Deterministic simulation of the partitioned pipeline, the way distributed databases test.

P partitions for each stage (identifier-keyed and customer-keyed), each key on the partition a
stable hash gives it. Between any source (the input, a partition) and a destination partition
messages travel in FIFO order, as Kafka keeps a producer's order within a partition; nothing
else is ordered. A seeded random scheduler picks which link delivers next, so one seed is one
interleaving, and the same seed replays it exactly.
"""

from __future__ import annotations

import json
import random
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from typing import Final, cast

from omnijourney.exceptions import ProtocolViolation
from streams.core.delivery import MessageId
from streams.core.erasure import Erasure, begin, on_answer
from streams.core.identity import IdentifierState
from streams.core.ids import partition_of
from streams.core.messages import (
    CustomerErased,
    CustomerMessage,
    IdentifierErased,
    IdentifierMessage,
    Message,
    Send,
    Tick,
    Topic,
    message_from_dict,
    message_to_dict,
)
from streams.core.model import Touch
from streams.core.records import Record
from streams.core.stitcher import ALIAS, LIVE, CustomerState, Stitcher

_INPUT: Final = "input"
_TIMER: Final = "timer"

Link = tuple[str, str, int]
"""(source, destination topic, destination partition)."""

Observer = Callable[["Simulator", Topic, str], None]
"""Called after every step with the topic and key that were processed."""


class Simulator:
    """Runs a Stitcher over P simulated partitions with seeded random interleavings."""

    def __init__(
        self,
        stitcher: Stitcher,
        partitions: int = 1,
        seed: int = 0,
        *,
        roundtrip: bool = False,
        observer: Observer | None = None,
    ) -> None:
        if partitions < 1:
            raise ValueError("partitions: must be >= 1")
        self.stitcher = stitcher
        self.partitions = partitions
        self.seed = seed
        self.roundtrip = roundtrip
        """Serialize every message and state through JSON, as Kafka and changelogs would."""
        self.observer = observer
        self.identifiers: list[dict[str, IdentifierState]] = [{} for _ in range(partitions)]
        self.customers: list[dict[str, CustomerState]] = [{} for _ in range(partitions)]
        self.records: list[Record] = []
        self.erasures: dict[str, Erasure] = {}
        """Erasure coordinators by request id (they stop once settling: the rest is I/O)."""
        self._now: datetime | None = None
        self.steps = 0
        self._random = random.Random(seed)  # noqa: S311 (a replayable schedule, not secrecy)
        self._links: dict[Link, deque[tuple[str, Message | Touch]]] = {}
        self._active: list[Link] = []

    # --- driving -----------------------------------------------------------------------------

    def submit(self, touches: Iterable[Touch]) -> None:
        """Queue touches on the input, in this order."""
        for touch in touches:
            self._enqueue((_INPUT, _INPUT, 0), touch.event_id, touch)

    def tick(self, now: datetime) -> None:
        """Queue a Tick for every customer (an adapter's timer), processed by `run`."""
        for partition, table in enumerate(self.customers):
            for key in table:
                self._enqueue((_TIMER, Topic.CUSTOMER, partition), key, Tick(now))

    def erase(self, request_id: str, identifier_keys: Iterable[str], now: datetime) -> None:
        """Start an erasure request, processed by `run` up to its settling phase."""
        self._now = now
        erasure, sends = begin(request_id, identifier_keys, False, now)
        self.erasures[request_id] = erasure
        self._dispatch(_INPUT, [send for send in sends if isinstance(send, Send)])

    def run(self, max_steps: int = 10_000_000) -> list[Record]:
        """Deliver messages until none is left; return the records produced meanwhile."""
        start = len(self.records)
        active, links, pick = self._active, self._links, self._random.randrange
        while active:
            if self.steps >= max_steps:
                raise ProtocolViolation(f"seed {self.seed}: no quiescence after {max_steps} steps")
            index = pick(len(active))
            link = active[index]
            queue = links[link]
            key, item = queue.popleft()
            if not queue:
                active[index] = active[-1]
                active.pop()
            self.steps += 1
            self._process(link, key, item)
        return self.records[start:]

    def _process(self, link: Link, key: str, item: Message | Touch) -> None:
        _, topic, partition = link
        if isinstance(item, Touch):
            records, sends = self.stitcher.admit(item)
            self.records.extend(records)
            self._dispatch(_INPUT, sends)
            return
        if topic == Topic.ERASURE:
            if isinstance(item, IdentifierErased | CustomerErased):
                origin = MessageId(link[0], self.steps, 0)
                assert self._now is not None
                outgoing = on_answer(self.erasures[key], item, origin, self._now)
                # The later phases are I/O (commits, the sink, ClickHouse): stop at settling.
                asks = [send for send in outgoing if isinstance(send, Send)]
                self._dispatch(f"{topic}:{partition}", asks)
            return
        if topic == Topic.IDENTIFIER:
            table = self.identifiers[partition]
            message = cast(IdentifierMessage, item)
            state, records, sends = self.stitcher.identifier_step(key, table.get(key), message)
            if state is not None:
                table[key] = self._reload_identifier(state)
            else:
                table.pop(key, None)
        else:
            customers = self.customers[partition]
            event = cast(CustomerMessage, item)
            customer, records, sends = self.stitcher.customer_step(key, customers.get(key), event)
            if customer is not None:
                customers[key] = self._reload_customer(customer)
            else:
                customers.pop(key, None)
        self.records.extend(records)
        self._dispatch(f"{topic}:{partition}", sends)
        if self.observer is not None:
            self.observer(self, Topic(topic), key)

    def _dispatch(self, source: str, sends: list[Send]) -> None:
        for send in sends:
            partition = partition_of(send.key, self.partitions)
            message = send.message
            if self.roundtrip:
                message = message_from_dict(json.loads(json.dumps(message_to_dict(message))))
            self._enqueue((source, send.topic, partition), send.key, message)

    def _enqueue(self, link: Link, key: str, item: Message | Touch) -> None:
        queue = self._links.get(link)
        if queue is None:
            queue = self._links[link] = deque()
        if not queue:
            self._active.append(link)
        queue.append((key, item))

    def _reload_identifier(self, state: IdentifierState) -> IdentifierState:
        if not self.roundtrip:
            return state
        return self.stitcher.identifier_from_dict(json.loads(json.dumps(state.to_dict())))

    def _reload_customer(self, state: CustomerState) -> CustomerState:
        if not self.roundtrip:
            return state
        return self.stitcher.customer_from_dict(json.loads(json.dumps(state.to_dict())))

    # --- inspection --------------------------------------------------------------------------

    def customer(self, customer_id: str) -> CustomerState | None:
        """The state of a customer key, if any."""
        return self.customers[partition_of(customer_id, self.partitions)].get(customer_id)

    def resolve(self, customer_id: str) -> str:
        """The live customer an id stands for, following aliases."""
        seen = 0
        state = self.customer(customer_id)
        while state is not None and state.status == ALIAS:
            customer_id = state.merged_into
            state = self.customer(customer_id)
            seen += 1
            if seen > 10_000:
                raise ProtocolViolation(f"alias cycle at {customer_id}")
        return customer_id

    def owner(self, identifier_key: str) -> str | None:
        """The live customer an identifier belongs to (None if it was never seen)."""
        state = self.identifiers[partition_of(identifier_key, self.partitions)].get(identifier_key)
        return None if state is None else self.resolve(state.owner)

    def identifier_states(self) -> Iterator[tuple[str, IdentifierState]]:
        """Every identifier key with its state."""
        for table in self.identifiers:
            yield from table.items()

    def customer_states(self) -> Iterator[CustomerState]:
        """Every customer state (live, alias or otherwise)."""
        for table in self.customers:
            yield from table.values()

    def live_customers(self) -> Iterator[CustomerState]:
        """Every live customer."""
        return (state for state in self.customer_states() if state.status == LIVE)
