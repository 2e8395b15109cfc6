"""The Faust application of the pipeline: `create_app(settings)`; stages register agents on it.

Values and keys travel as raw bytes (pydantic models and orjson at the edges of each agent,
never faust.Record), so a message that cannot be decoded reaches our code, which dead-letters
it, instead of being dropped by Faust's deserializer.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import faust
from aiokafka import AIOKafkaConsumer
from faust.transport.consumer import ensure_TP
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP, Message, TopicT

from omnijourney.settings import Settings
from streams.offsets import commit_point, hole
from streams.topics import TopicSpec


class _ReadCommittedThread(faust_aiokafka.AIOKafkaConsumerThread):
    """Faust reads read_committed only under exactly_once; the collector's aborted
    transactions must never be read, so the worker consumer reads committed data only."""

    def _create_worker_consumer(self, transport: Any) -> AIOKafkaConsumer:
        consumer = super()._create_worker_consumer(transport)
        # aiokafka hands this to its Fetcher on start(); the constructor argument of the
        # same name is not reachable through Faust's settings.
        consumer._isolation_level = "read_committed"
        return consumer


class ReadCommittedConsumer(faust_aiokafka.Consumer):
    """Reads committed data only, and forgets acked offsets only once Kafka confirmed them.

    Faust drops the acked offsets of a commit before it knows the commit succeeded; a commit
    refused by a rebalance then leaves a hole that stalls the partition (streams.offsets).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._confirmed: dict[TP, int] = {}
        """Per partition, the committed offset Kafka confirmed (read at seek, or ours)."""
        self._holes: dict[TP, tuple[int, float]] = {}
        """Per partition waiting on a hole: the hole's offset and since when (monotonic)."""

    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        return _ReadCommittedThread(self, loop=self.loop, beacon=self.beacon)

    async def seek_to_committed(self) -> Mapping[TP, int]:
        offsets = await super().seek_to_committed()
        for tp, offset in offsets.items():
            if offset is not None and offset >= 0:
                self._confirmed[ensure_TP(tp)] = offset
        # aiokafka seeks only to a commit above 0, so a partition never committed stays where
        # it was read to. Faust relies on this seek to read again what its streams dropped
        # while the flow was suspended (a takeover's recovery): without it, the messages the
        # previous owner never committed were lost. Such partitions start over (as
        # auto_offset_reset=earliest does); what was processed already is dropped as repeats.
        fresh = [
            faust_aiokafka.ensure_aiokafka_TP(tp)
            for tp, offset in offsets.items()
            if (offset is None or offset <= 0) and not self._is_changelog_tp(ensure_TP(tp))
        ]
        if fresh:
            await self._thread.seek_to_beginning(*fresh)
        return offsets

    async def _commit(self, offsets: Mapping[TP, int]) -> bool:
        assigned = self.assignment()
        done = await super()._commit(offsets)
        if done:
            self._confirmed.update({tp: o for tp, o in offsets.items() if tp in assigned})
        return done

    async def on_partitions_revoked(self, revoked: set[TP]) -> None:
        for tp in revoked:
            self._confirmed.pop(tp, None)
        await super().on_partitions_revoked(revoked)

    def ack(self, message: Message) -> bool:
        """Record a processed message for commit; never one read during a rebalance.

        Faust's streams ack, unprocessed, what they read while the flow is suspended or from
        an older generation (so that lag does not grow), and the revoke's commit would then
        pass it: a message lost. Such a message is dropped from the pending set instead and
        read again after the rebalance's seek; a processed message refused here is a repeat
        then, which the stages drop (decision 0018).
        """
        app = self.app
        if message.generation_id != app.consumer_generation_id or not app.flow_control.is_active():
            message.acked = True
            self._unacked_messages.discard(message)
            return False
        return super().ack(message)

    async def rewind_holes(self, now: float, after_s: float) -> list[tuple[TP, int]]:
        """Read again partitions whose commit waited on the same hole for after_s seconds."""
        in_flight: dict[TP, list[int]] = {}
        for message in self._unacked_messages:
            in_flight.setdefault(message.tp, []).append(message.offset)
        rewound = []
        for tp in self.assignment():
            tree = self._gap.get(tp)
            gaps = [(i.begin, i.end) for i in tree] if tree else []
            offset = hole(
                self._confirmed.get(tp), self._acked.get(tp, ()), in_flight.get(tp, ()), gaps
            )
            if offset is None:
                self._holes.pop(tp, None)
                continue
            seen, since = self._holes.setdefault(tp, (offset, now))
            if seen != offset:
                self._holes[tp] = (offset, now)
            elif now - since >= after_s:
                await self.seek(tp, offset)
                self._holes.pop(tp, None)
                rewound.append((tp, offset))
        return rewound

    def _new_offset(self, tp: TP) -> int | None:
        acked = self._acked[tp]
        if not acked:
            return None
        top = max(acked) + 1
        gaps: list[tuple[int, int]] = []
        tree = self._gap[tp]
        if tree:
            gaps = [(i.begin, i.end) for i in tree.overlap(0, top)]
            if gaps:
                tree.chop(0, max(top, *(end for _, end in gaps)))
        point, keep = commit_point(self._confirmed.get(tp), acked, gaps)
        acked[:] = keep
        index = self._acked_index[tp]
        index.clear()
        index.update(keep)
        return point


class _Transport(faust_aiokafka.Transport):
    Consumer = ReadCommittedConsumer


class App(faust.App):
    """faust.App whose consumers read committed data only."""

    def _new_transport(self) -> Any:
        return _Transport(self.conf.broker_consumer, self)


def broker_url(bootstrap: str) -> str:
    """Faust's broker URL for a bootstrap list ("h1:9092,h2:9092")."""
    servers = [server.strip() for server in bootstrap.split(",") if server.strip()]
    return ";".join(f"kafka://{server}" for server in servers)


def create_app(settings: Settings, **overrides: Any) -> faust.App:
    """The pipeline's Faust app, configured from settings (overrides go to faust.App)."""
    worker = settings.worker
    datadir = settings.path("worker")
    datadir.mkdir(parents=True, exist_ok=True)  # Faust creates only the last level
    options: dict[str, Any] = {
        "broker": broker_url(settings.kafka.bootstrap),
        "store": worker.store,
        "datadir": str(datadir),
        "web_host": worker.host,
        "web_bind": worker.host,
        "web_port": worker.port,
        "web_in_thread": False,
        "topic_partitions": settings.topics.partitions,
        # Faust's own topics (table changelogs); the worker passes what the cluster allows.
        "topic_replication_factor": settings.kafka.replication_factor or 1,
        "key_serializer": "raw",
        "value_serializer": "raw",
        "processing_guarantee": "at_least_once",
        "producer_acks": -1,
        "consumer_auto_offset_reset": "earliest",
        "autodiscover": False,
        "broker_commit_interval": worker.commit_interval_s,
        "broker_commit_every": worker.commit_every,
        "producer_linger": worker.producer_linger_ms / 1000,
        "producer_max_batch_size": worker.producer_batch_bytes,
        "producer_compression_type": (
            None if worker.producer_compression == "none" else worker.producer_compression
        ),
        "consumer_max_fetch_size": worker.fetch_partition_bytes,
        "broker_max_poll_records": worker.max_poll_records,
        "stream_buffer_maxsize": worker.stream_buffer,
    }
    options.update(overrides)
    return App(worker.app_id, **options)


def bytes_topic(app: faust.App, spec: TopicSpec) -> TopicT:
    """The Faust topic of a spec: raw bytes keys and values (models are decoded in the agents)."""
    return app.topic(
        spec.name,
        key_type=bytes,
        value_type=bytes,
        partitions=spec.partitions,
        config=dict(spec.config),
    )
