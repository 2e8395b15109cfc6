"""`simulate --via-collector` against the real collector and Kafka: every valid event lands once."""

from __future__ import annotations

import asyncio
import io
from collections import Counter
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestServer
from pydantic import SecretStr

from omnijourney.collector.server import build, create_app
from omnijourney.settings import CollectorSettings, Settings, WriteKey
from omnijourney.simulator.config import SimulationConfig
from omnijourney.simulator.delivery import Pacer, Progress, Stamper, to_collector
from omnijourney.simulator.generator import Emission, simulate
from omnijourney.simulator.truth import TruthRecord
from schemas.channel import CHANNELS
from schemas.keystore import hasher_from_settings
from tests.pipeline_support import collector_settings, end_offsets, read_from
from tests.simulator.support import START

pytestmark = pytest.mark.kafka
SECRET = "simulator-every-channel-0123456789"


@pytest.fixture(scope="module")
def settings(kafka_settings: Settings, kafka_bootstrap: str) -> Settings:
    base = collector_settings(kafka_settings, kafka_bootstrap)
    keys = {"simulator": WriteKey(secret=SecretStr(SECRET), channels=tuple(CHANNELS))}
    fields = {**base.collector.model_dump(), "write_keys": keys}
    return base.model_copy(update={"collector": CollectorSettings.model_validate(fields)})


def test_every_valid_event_lands_once_and_malformed_ones_are_refused(settings: Settings) -> None:
    config = SimulationConfig(customers=150, days=4, start=START, seed=4, malformed_share=0.05)
    emissions = [
        e for e in simulate(config, hasher_from_settings(settings)) if isinstance(e, Emission)
    ]
    valid = Counter(e.event["event_id"] for e in emissions if e.kind == "event" and e.event)
    copies = sum(e.kind == "duplicate" for e in emissions)
    malformed = sum(e.kind == "malformed" for e in emissions)
    assert malformed > 10  # enough that most batches of 100 hold one
    bootstrap = settings.kafka.bootstrap
    topics = [f"touchpoints.{channel}" for channel in CHANNELS]

    async def scenario() -> tuple[Any, list[Any]]:
        collector, _ = build(settings)
        server = TestServer(create_app(collector), host="127.0.0.1")
        await server.start_server()
        try:
            assert await collector.delivery.wait_connected(60), collector.delivery.last_error
            start = await end_offsets(bootstrap, topics)
            truth: list[TruthRecord] = []
            tally = await to_collector(
                simulate(config, hasher_from_settings(settings)),
                url=str(server.make_url("/")),
                write_key=SECRET,
                stamper=Stamper("none"),
                truth=truth.append,
                pacer=Pacer(None),
                progress=Progress(0, 1, io.StringIO(), enabled=False),
            )
            after = await end_offsets(bootstrap, topics)
            start = {tp: start.get(tp, 0) for tp in after}
            return tally, await read_from(bootstrap, start)
        finally:
            await server.close()

    tally, records = asyncio.run(scenario())
    landed = Counter(orjson.loads(r.value)["event_id"] for r in records if r.value)
    ours = {event_id: n for event_id, n in landed.items() if event_id in valid}
    # each valid event once, plus the copies flaky clients re-sent (the pipeline dedupes them)
    assert set(ours) == set(valid)
    assert sum(ours.values()) == len(valid) + copies
    assert (tally.accepted, tally.rejected) == (len(valid) + copies, malformed)
    assert tally.records == len(emissions)
