"""The Faust application of the pipeline: `create_app(settings)`; stages register agents on it.

Values and keys travel as raw bytes (pydantic models and orjson at the edges of each agent,
never faust.Record), so a message that cannot be decoded reaches our code, which dead-letters
it, instead of being dropped by Faust's deserializer.
"""

from __future__ import annotations

from typing import Any

import faust
from aiokafka import AIOKafkaConsumer
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TopicT

from omnijourney.settings import Settings
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


class _ReadCommittedConsumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        return _ReadCommittedThread(self, loop=self.loop, beacon=self.beacon)


class _Transport(faust_aiokafka.Transport):
    Consumer = _ReadCommittedConsumer


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
        "topic_replication_factor": settings.topics.replication_factor,
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
