"""Kafka administration over aiokafka: topic creation and a readiness probe for any cluster."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from aiokafka import AIOKafkaClient, AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError, for_code

from omnijourney.exceptions import ConfigurationError, ServiceError


def _connection(bootstrap: str, options: Mapping[str, Any] | None) -> dict[str, Any]:
    # options: TLS/SASL keyword arguments from omnijourney.kafka_options.client_options().
    return {**(options or {}), "bootstrap_servers": bootstrap}


async def cluster_broker_ids(
    bootstrap: str, timeout_s: float = 5.0, *, options: Mapping[str, Any] | None = None
) -> set[int]:
    """The node ids of the live brokers the cluster names in its answer to a metadata request."""
    client = AIOKafkaClient(
        **_connection(bootstrap, options), request_timeout_ms=int(timeout_s * 1000)
    )
    try:
        async with asyncio.timeout(timeout_s):
            await client.bootstrap()
        return {broker.nodeId for broker in client.cluster.brokers()}
    finally:
        await client.close()


async def cluster_brokers(
    bootstrap: str, timeout_s: float = 5.0, *, options: Mapping[str, Any] | None = None
) -> int:
    """How many brokers the cluster names in its answer to a metadata request."""
    return len(await cluster_broker_ids(bootstrap, timeout_s, options=options))


def topic_replication(
    brokers: int, replication_factor: int | None = None, min_insync_replicas: int | None = None
) -> tuple[int, int]:
    """(replication factor, min.insync.replicas) for topics on a cluster of `brokers` brokers.

    Unset values default to three copies (fewer on a smaller cluster) and an ISR minimum of
    one less, so acks=all writes survive one lost broker without ever resting on one copy.
    """
    replicas = replication_factor if replication_factor is not None else min(3, max(1, brokers))
    min_isr = min_insync_replicas if min_insync_replicas is not None else max(1, replicas - 1)
    if replicas < 1 or min_isr < 1:
        raise ConfigurationError(
            f"replication_factor and min_insync_replicas must be >= 1, got {replicas}, {min_isr}"
        )
    if min_isr > replicas:
        raise ConfigurationError(
            f"min_insync_replicas ({min_isr}) must not exceed replication_factor ({replicas})"
        )
    return replicas, min_isr


async def replication_of(
    bootstrap: str,
    replication_factor: int | None = None,
    min_insync_replicas: int | None = None,
    *,
    timeout_s: float = 30.0,
    options: Mapping[str, Any] | None = None,
) -> tuple[int, int]:
    """topic_replication() of the cluster at `bootstrap` (asked only when a value is unset)."""
    if replication_factor is not None and min_insync_replicas is not None:
        return topic_replication(1, replication_factor, min_insync_replicas)
    brokers = len(await cluster_broker_ids(bootstrap, timeout_s, options=options))
    return topic_replication(brokers, replication_factor, min_insync_replicas)


def _validate(topics: Mapping[str, int]) -> None:
    for name, partitions in topics.items():
        if not name or not isinstance(partitions, int) or partitions < 1:
            raise ConfigurationError(
                f"topic {name!r}: partitions must be a whole number >= 1, got {partitions!r}"
            )


async def _describe(admin: AIOKafkaAdminClient, names: Iterable[str]) -> list[dict[str, Any]]:
    # Asking for all topics and filtering: a metadata request naming a missing topic would
    # auto-create it on brokers with auto.create.topics.enable (the local one has it).
    wanted = set(names)
    described: list[dict[str, Any]] = await admin.describe_topics()
    return [t for t in described if t["topic"] in wanted]


def _all_led(described: list[dict[str, Any]], names: set[str]) -> bool:
    seen = {t["topic"] for t in described if t["error_code"] == 0 and t["partitions"]}
    led = all(p["leader"] >= 0 for t in described for p in t["partitions"])
    return names <= seen and led


async def topic_partitions(
    bootstrap: str, names: Iterable[str], *, options: Mapping[str, Any] | None = None
) -> dict[str, int]:
    """The partition count of each existing topic among names (missing topics are left out)."""
    admin = AIOKafkaAdminClient(**_connection(bootstrap, options))
    await admin.start()
    try:
        described = await _describe(admin, names)
    finally:
        await admin.close()
    return {t["topic"]: len(t["partitions"]) for t in described if t["error_code"] == 0}


async def ensure_topics(
    bootstrap: str,
    topics: Mapping[str, int],
    *,
    replication_factor: int | None = None,
    min_insync_replicas: int | None = None,
    config: Mapping[str, str] | None = None,
    timeout_s: float = 30.0,
    options: Mapping[str, Any] | None = None,
) -> list[str]:
    """Create the missing topics ({name: partitions}) and wait for their leaders.

    Replication defaults to topic_replication() of the brokers the cluster names (RF 1 on one
    broker, RF 3 with min.insync.replicas 2 on three or more); `config` entries win. `options`
    are the TLS/SASL client arguments of omnijourney.kafka_options.client_options().
    Existing topics are left as they are (their partition count is never changed: that would
    move keys to other partitions). Returns the names this call created.
    """
    _validate(topics)
    if replication_factor is not None or min_insync_replicas is not None:
        topic_replication(1, replication_factor, min_insync_replicas)  # reject bad values early
    admin = AIOKafkaAdminClient(
        **_connection(bootstrap, options), request_timeout_ms=int(timeout_s * 1000)
    )
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = {name: count for name, count in topics.items() if name not in existing}
        missing = []
        if wanted:
            replicas, min_isr = await replication_of(
                bootstrap,
                replication_factor,
                min_insync_replicas,
                timeout_s=timeout_s,
                options=options,
            )
            # On one broker the broker default (1) is all there can be: no override needed.
            topic_config = {"min.insync.replicas": str(min_isr)} if replicas > 1 else {}
            topic_config |= dict(config or {})
            missing = [
                NewTopic(name, count, replicas, topic_configs=dict(topic_config))
                for name, count in wanted.items()
            ]
        created: list[str] = []
        if missing:
            response = await admin.create_topics(missing, timeout_ms=int(timeout_s * 1000))
            for topic, code, *message in response.topic_errors:
                if code == 0:
                    created.append(topic)
                elif code != TopicAlreadyExistsError.errno:  # created meanwhile by another
                    reason = message[0] if message and message[0] else for_code(code).description
                    raise ServiceError(f"creating topic {topic!r} failed: {reason}")
        # Creation returns before every partition has a leader; producers need the leaders.
        deadline = time.monotonic() + timeout_s
        while not _all_led(await _describe(admin, topics), set(topics)):
            if time.monotonic() > deadline:
                raise ServiceError(f"topics {sorted(topics)} have no leaders after {timeout_s}s")
            await asyncio.sleep(0.1)
        return sorted(created)
    finally:
        await admin.close()


class TopicSpecLike(Protocol):
    """What `declare_topics` needs to know of a topic (e.g. `streams.topics.TopicSpec`)."""

    @property
    def name(self) -> str: ...
    @property
    def partitions(self) -> int: ...
    @property
    def config(self) -> Mapping[str, str]: ...


async def declare_topics(
    bootstrap: str,
    specs: Iterable[TopicSpecLike],
    *,
    replication_factor: int | None = None,
    min_insync_replicas: int | None = None,
    timeout_s: float = 30.0,
) -> list[str]:
    """Create the missing topics of `specs`, each with its own config; the names created.

    Unset replication values default as in ensure_topics (from the brokers the cluster names).
    """
    groups: dict[tuple[tuple[str, str], ...], dict[str, int]] = {}
    for spec in specs:
        groups.setdefault(tuple(sorted(spec.config.items())), {})[spec.name] = spec.partitions
    created: list[str] = []
    for config, topics in groups.items():
        created += await ensure_topics(
            bootstrap,
            topics,
            replication_factor=replication_factor,
            min_insync_replicas=min_insync_replicas,
            config=dict(config),
            timeout_s=timeout_s,
        )
    return sorted(created)


async def end_offsets(
    bootstrap: str,
    topics: Iterable[str],
    *,
    isolation: str = "read_uncommitted",
    options: Mapping[str, Any] | None = None,
) -> dict[TopicPartition, int]:
    """The end offset of every partition of the existing topics (read_uncommitted: the HWM)."""
    counts = await topic_partitions(bootstrap, topics, options=options)
    if not counts:
        # None of the topics exists yet (a fresh broker): nothing to read from; an idle
        # aiokafka consumer stopped right after start raises CancelledError.
        return {}
    consumer = AIOKafkaConsumer(**_connection(bootstrap, options), isolation_level=isolation)
    await consumer.start()
    try:
        tps = [TopicPartition(t, p) for t, n in counts.items() for p in range(n)]
        ends: dict[TopicPartition, int] = await consumer.end_offsets(tps)
        return ends
    finally:
        await stop_consumer(consumer)


async def commit_offsets(
    bootstrap: str,
    group_id: str,
    offsets: Mapping[TopicPartition, int],
    *,
    options: Mapping[str, Any] | None = None,
) -> None:
    """Commit offsets for a consumer group that has no live member (e.g. before it starts).

    A worker of that group then starts there, not at the history earlier runs left on a
    shared broker, and without the race of auto_offset_reset=latest.
    """
    if not offsets:
        return
    consumer = AIOKafkaConsumer(
        **_connection(bootstrap, options), group_id=group_id, enable_auto_commit=False
    )
    await consumer.start()
    try:
        consumer.assign(list(offsets))
        await consumer.commit(dict(offsets))
    finally:
        await stop_consumer(consumer)


async def stop_consumer(consumer: AIOKafkaConsumer) -> None:
    """Stop a short-lived consumer; its internal tasks' cancellation is not ours.

    aiokafka re-raises the cancellation of a consumer's internal task when it is stopped soon
    after starting (aio-libs/aiokafka#647): inside a stage that would end the agent for good.
    A cancellation of the calling task itself still propagates.
    """
    try:
        await consumer.stop()
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise
