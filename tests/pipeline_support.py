"""Helpers of the collector and worker tests: ports, settings copies, reading topics, workers."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from pydantic import SecretStr

from omnijourney.local.admin import commit_offsets, end_offsets, stop_consumer
from omnijourney.local.process import free_port
from omnijourney.local.worker_process import WorkerProcess
from omnijourney.settings import CollectorSettings, Settings, WriteKey
from schemas.examples import examples

ROOT = Path(__file__).resolve().parents[1]
PII_KEY = "omnijourney-test-pii-key-0123456789abcdef"
WEB_SECRET = "web-shop-secret-0123456789"
POS_SECRET = "till-017-03-secret-0123456789"
# A synthetic address that appears in the examples (example.com is reserved for docs).
CLEAR_EMAIL = b"jane.roe@example.com"


def collector_settings(settings: Settings, bootstrap: str, **collector: Any) -> Settings:
    """Settings for an in-process collector against `bootstrap`, with a web and a pos key."""
    keys = {
        "web-shop": WriteKey(secret=SecretStr(WEB_SECRET), channels=("web",)),
        "till-017-03": WriteKey(secret=SecretStr(POS_SECRET), channels=("pos",)),
    }
    fields: dict[str, Any] = {
        "write_keys": keys,
        "port": 0,
        "transactional_id": f"omnijourney-test-{uuid.uuid4().hex[:8]}",
        **collector,
    }
    return settings.model_copy(
        update={
            "kafka": settings.kafka.model_copy(update={"bootstrap_servers": bootstrap}),
            "privacy": settings.privacy.model_copy(update={"pii_hash_key": SecretStr(PII_KEY)}),
            "collector": CollectorSettings.model_validate(fields),
        }
    )


def fresh(channel: str, type_: str | None = None) -> dict[str, Any]:
    """A valid example event of the channel (and type) with a unique event_id."""
    for event in examples():
        if event["channel"] == channel and type_ in (None, event["type"]):
            return {**event, "event_id": str(uuid.uuid4())}
    raise LookupError((channel, type_))


@dataclass(frozen=True)
class Consumed:
    """One record read back."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    timestamp_type: int


async def read_from(
    bootstrap: str, start: dict[TopicPartition, int], *, isolation: str = "read_committed"
) -> list[Consumed]:
    """Every record after `start` up to the current end of each partition."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, isolation_level=isolation
    )
    await consumer.start()
    try:
        consumer.assign(list(start))
        for tp, offset in start.items():
            consumer.seek(tp, offset)
        ends = await consumer.end_offsets(list(start))
        out: list[Consumed] = []
        pending = {tp for tp in start if ends[tp] > start[tp]}
        deadline = asyncio.get_running_loop().time() + 60
        while pending and asyncio.get_running_loop().time() < deadline:
            batches = await consumer.getmany(*pending, timeout_ms=2000)
            for records in batches.values():
                out += [
                    Consumed(r.topic, r.partition, r.offset, r.key, r.value, r.timestamp_type)
                    for r in records
                ]
            pending = {tp for tp in pending if await consumer.position(tp) < ends[tp]}
        return out
    finally:
        await stop_consumer(consumer)


def tmp_dir(base: Path, name: str) -> Path:
    """A fresh directory below base."""
    path = base / f"{name}-{uuid.uuid4().hex[:6]}"
    path.mkdir(parents=True)
    return path


async def commit_ends(bootstrap: str, group_id: str, topics: Iterable[str]) -> None:
    """Commit the current end offsets of the topics for a new consumer group.

    A test worker then starts where the topics end now, not at the history other runs left
    on a shared broker, and without the race of auto_offset_reset=latest.
    """
    await commit_offsets(bootstrap, group_id, await end_offsets(bootstrap, topics))


class Worker(WorkerProcess):
    """A worker subprocess (`python -m omnijourney.cli worker`) with its own consumer group."""

    def __init__(
        self,
        bootstrap: str,
        data_dir: Path,
        *,
        from_end: bool = True,
        group_id: str | None = None,
        **env_settings: str,
    ) -> None:
        from streams.topics import VALID_TOPIC, raw_topic_names

        self.group_id = group_id or f"omnijourney-test-{uuid.uuid4().hex[:8]}"
        if from_end and group_id is None:
            asyncio.run(commit_ends(bootstrap, self.group_id, [*raw_topic_names(), VALID_TOPIC]))
        env = {
            "OMNIJOURNEY_WORKER__COMMIT_INTERVAL_S": "0.5",
            "OMNIJOURNEY_WORKER__LOG_LEVEL": "warning",
            **env_settings,
        }
        super().__init__(
            bootstrap, data_dir, app_id=self.group_id, port=free_port(), pii_key=PII_KEY, env=env
        )

    def kill(self) -> None:
        """SIGKILL: no shutdown, no last commit, no flush."""
        self.process.kill()
        self.process.wait()
