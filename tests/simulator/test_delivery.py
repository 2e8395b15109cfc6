"""Sending: sent_at stamping, pacing, the progress line, and the collector client's protocol."""

from __future__ import annotations

import asyncio
import io
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import orjson
import pytest
from aiohttp import web

from omnijourney.exceptions import ConfigurationError
from omnijourney.simulator.config import SimulationConfig
from omnijourney.simulator.delivery import (
    Pacer,
    Progress,
    Stamper,
    collector_url,
    progress_line,
    retry_after,
    to_collector,
)
from omnijourney.simulator.generator import Emission, simulate
from omnijourney.simulator.truth import TruthRecord
from tests.simulator.support import HASHER, START

NOW = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _emission() -> Emission:
    event = {"event_id": "e-1", "channel": "web", "occurred_at": "2024-05-01T10:00:00Z"}
    return Emission(1714557600 + 5, "web", "event", event, None, 0, 1714557600, None)


def test_stamper_modes() -> None:
    emission = _emission()
    wall, now = Stamper("wall", lambda: NOW).stamp(emission)
    assert wall["sent_at"] == now == NOW
    simulated, now = Stamper("simulated").stamp(emission)
    assert simulated["sent_at"] == now == datetime(2024, 5, 1, 10, 0, 5, tzinfo=UTC)
    bare, now = Stamper("none").stamp(emission)
    assert bare["sent_at"] is None and now == datetime(2024, 5, 1, 10, 0, 5, tzinfo=UTC)
    assert "sent_at" not in emission.event  # type: ignore[operator]
    with pytest.raises(ConfigurationError):
        Stamper("later")  # type: ignore[arg-type]


def test_pacer_holds_the_rate() -> None:
    clock = FakeClock()
    pacer = Pacer(100.0, clock)
    assert pacer.delay(50) == pytest.approx(0.5)
    clock.now += 1.0
    assert pacer.delay(50) == 0.0 and pacer.delay(150) == pytest.approx(0.5)
    assert Pacer(None, clock).delay(10**9) == 0.0
    with pytest.raises(ConfigurationError, match="--rate"):
        Pacer(0.0)


def test_progress_line_and_its_cadence() -> None:
    line = progress_line(12_000, 4.0, 0.25, 1714557600)
    assert "12,000 sent" in line and "3,000 events/s" in line
    assert "at 2024-05-01 10:00" in line and "25.0%" in line and "ETA 0:00:12" in line
    assert progress_line(0, 0.0, 0.0, 1714557600).endswith("ETA ?")
    clock, stream = FakeClock(), io.StringIO()
    progress = Progress(1714521600, 1714521600 + 86_400, stream, clock)
    progress.update(10, 1714521600 + 3600)
    clock.now += 6.0
    progress.update(20, 1714521600 + 43_200)
    progress.update(30, 1714521600 + 50_000)  # too soon after the last line
    progress.update(40, 1714521600 + 86_400, final=True)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2 and "50.0%" in lines[0] and "100.0%" in lines[1]


def test_retry_after_header() -> None:
    assert retry_after("3", NOW) == 3.0
    assert retry_after(format_datetime(NOW + timedelta(seconds=10), usegmt=True), NOW) == 10.0
    assert retry_after("soon", NOW) == 1.0 and retry_after(None, NOW) == 1.0
    assert retry_after("99999", NOW) == 300.0


def test_collector_url() -> None:
    assert collector_url("http://127.0.0.1:8080/") == "http://127.0.0.1:8080/v1/touchpoints"
    assert collector_url("https://c.example.com/v1/touchpoints") == (
        "https://c.example.com/v1/touchpoints"
    )
    with pytest.raises(ConfigurationError, match="http"):
        collector_url("127.0.0.1:8080")


async def _serve(handler: Any) -> tuple[web.AppRunner, str]:
    app = web.Application()
    app.router.add_post("/v1/touchpoints", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}"


def test_collector_client_batches_authenticates_and_honours_503() -> None:
    bodies: list[bytes] = []
    calls = {"n": 0}

    async def handler(request: web.Request) -> web.Response:
        calls["n"] += 1
        assert request.headers["Authorization"] == "Bearer test-write-key-0123456789"
        if calls["n"] == 2:  # Kafka is slow: come back later
            return web.Response(status=503, headers={"Retry-After": "0"})
        body = await request.read()
        bodies.append(body)
        try:
            events = orjson.loads(body)
        except orjson.JSONDecodeError:
            return web.json_response({"error": "not_json"}, status=400)
        return web.json_response({"accepted": len(events)}, status=202)

    config = SimulationConfig(customers=40, days=3, start=START, seed=2, malformed_share=0.05)
    truth: list[TruthRecord] = []

    async def main() -> Any:
        runner, url = await _serve(handler)
        try:
            return await to_collector(
                simulate(config, HASHER),
                url=url,
                write_key="test-write-key-0123456789",
                stamper=Stamper("none"),
                truth=truth.append,
                pacer=Pacer(None),
                progress=Progress(0, 1, io.StringIO(), enabled=False),
            )
        finally:
            await runner.cleanup()

    tally = asyncio.run(main())
    assert tally.retries == 1 and tally.records > 100
    assert tally.accepted + tally.rejected == tally.records
    arrays = [orjson.loads(b) for b in bodies if b.startswith(b"[")]
    assert all(1 <= len(a) <= 100 for a in arrays) and max(len(a) for a in arrays) == 100
    # the collector is the edge: clear contact data goes to it, and it hashes
    assert any(i["kind"] == "email" for a in arrays for e in a for i in e.get("identities", []))
    assert tally.rejected == len(bodies) - len(arrays) > 0  # the not-JSON ones, alone
    assert truth[-1].type == "summary"


def test_collector_refusing_the_key_stops_the_run() -> None:
    async def handler(request: web.Request) -> web.Response:
        return web.json_response({"error": "unauthorized"}, status=401)

    async def main() -> None:
        runner, url = await _serve(handler)
        try:
            await to_collector(
                iter([_emission()]),
                url=url,
                write_key="wrong-key-0123456789",
                stamper=Stamper("none"),
                truth=lambda record: None,
                pacer=Pacer(None),
                progress=Progress(0, 1, io.StringIO(), enabled=False),
            )
        finally:
            await runner.cleanup()

    with pytest.raises(ConfigurationError, match="HTTP 401"):
        asyncio.run(main())
