"""Kafka administration over aiokafka: topic creation and a readiness probe for any cluster."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from aiokafka import AIOKafkaClient
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError, for_code

from omnijourney.exceptions import ConfigurationError, ServiceError


async def cluster_brokers(bootstrap: str, timeout_s: float = 5.0) -> int:
    """How many brokers the cluster names in its answer to a metadata request."""
    client = AIOKafkaClient(bootstrap_servers=bootstrap, request_timeout_ms=int(timeout_s * 1000))
    try:
        async with asyncio.timeout(timeout_s):
            await client.bootstrap()
        return len(client.cluster.brokers())
    finally:
        await client.close()


def _validate(topics: Mapping[str, int], replication_factor: int) -> None:
    for name, partitions in topics.items():
        if not name or not isinstance(partitions, int) or partitions < 1:
            raise ConfigurationError(
                f"topic {name!r}: partitions must be a whole number >= 1, got {partitions!r}"
            )
    if replication_factor < 1:
        raise ConfigurationError(f"replication_factor must be >= 1, got {replication_factor!r}")


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


async def topic_partitions(bootstrap: str, names: Iterable[str]) -> dict[str, int]:
    """The partition count of each existing topic among names (missing topics are left out)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
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
    replication_factor: int = 1,
    config: Mapping[str, str] | None = None,
    timeout_s: float = 30.0,
) -> list[str]:
    """Create the missing topics ({name: partitions}) and wait for their leaders.

    Existing topics are left as they are (their partition count is never changed: that would
    move keys to other partitions). Returns the names this call created.
    """
    _validate(topics, replication_factor)
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap, request_timeout_ms=int(timeout_s * 1000)
    )
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [
            NewTopic(name, partitions, replication_factor, topic_configs=dict(config or {}))
            for name, partitions in topics.items()
            if name not in existing
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
    replication_factor: int = 1,
    timeout_s: float = 30.0,
) -> list[str]:
    """Create the missing topics of `specs`, each with its own config; the names created."""
    groups: dict[tuple[tuple[str, str], ...], dict[str, int]] = {}
    for spec in specs:
        groups.setdefault(tuple(sorted(spec.config.items())), {})[spec.name] = spec.partitions
    created: list[str] = []
    for config, topics in groups.items():
        created += await ensure_topics(
            bootstrap,
            topics,
            replication_factor=replication_factor,
            config=dict(config),
            timeout_s=timeout_s,
        )
    return sorted(created)
