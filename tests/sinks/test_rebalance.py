"""Rebalances of the sink group under a live stream lose and double nothing.

The window that matters is the one between a new assignment and the moment the sink knows
where each partition's batches start: aiokafka already fetches the new partitions from their
committed offsets then, and reading the commit markers takes a round trip (seconds when the
group's coordinator has just died). The test widens that window on purpose.
"""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import TopicPartition

from omnijourney.settings import Settings
from sinks.sink import Sink, SinkHooks
from tests.sinks.support import (
    counts,
    create_topics,
    doubled,
    isolated,
    messages,
    prepare,
    produce,
    unique_touches,
    wait_committed,
    wait_for,
)

pytestmark = [pytest.mark.kafka, pytest.mark.clickhouse]


def test_members_joining_and_leaving_mid_stream_lose_no_row(
    kafka_bootstrap: str, clickhouse_settings: Settings
) -> None:
    settings = isolated(clickhouse_settings, flush_interval_s=0.3, batch_rows=50)
    conn = prepare(settings)
    waves, per_wave = 6, 150
    total = waves * per_wave
    assignments: list[int] = []

    async def slow_assignment(assigned: set[TopicPartition]) -> None:
        assignments.append(len(assigned))
        await asyncio.sleep(2.0)  # the offsets read of a group whose coordinator moved

    hooks = SinkHooks(before_assigned=slow_assignment)

    async def scenario() -> list[Sink]:
        await create_topics(settings)
        sinks = [Sink(settings, hooks=hooks)]
        stop_first, stop_joined = asyncio.Event(), asyncio.Event()
        running = asyncio.create_task(sinks[0].run(stop_first))
        joined: asyncio.Task[None] | None = None
        try:
            await wait_for(sinks[0].ready.is_set, 60, "the first sink's assignment")
            for wave in range(waves):
                # records wait on every partition when the group rebalances
                touches = unique_touches(per_wave, start=wave * per_wave)
                await produce(settings, messages(settings, touches))
                if joined is None:  # a member joins: every partition is revoked and reassigned
                    sinks.append(Sink(settings, hooks=hooks))
                    stop_joined = asyncio.Event()
                    joined = asyncio.create_task(sinks[-1].run(stop_joined))
                    await wait_for(sinks[-1].ready.is_set, 60, "the member's assignment")
                else:  # and leaves again
                    stop_joined.set()
                    await asyncio.wait_for(joined, 60)
                    joined = None
            await wait_committed(settings, 120, "the sink group to commit everything")
            return sinks
        finally:
            stop_first.set()
            stop_joined.set()
            await asyncio.wait_for(running, 60)
            if joined is not None:
                await asyncio.wait_for(joined, 60)

    try:
        sinks = asyncio.run(scenario())
        # partitions changed hands at every join and leave (some rebalances coalesce)
        assert len(assignments) >= waves, assignments
        assert sum(sink.stats.records for sink in sinks[1:]) > 0, "the members read nothing"
        assert counts(conn, final=True)["touchpoints"] == total
        assert doubled(conn) == {}
    finally:
        conn.command(f"DROP DATABASE IF EXISTS `{settings.clickhouse.database}`")
        conn.close()
