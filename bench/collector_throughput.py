"""HTTP collector throughput: batches of 100 events over loopback, several concurrent clients.

    PYTHONPATH=. python -m bench.collector_throughput [--batches 300] [--size 100] [--clients 4]

Runs `omnijourney collector` as its own process against the local broker (started when it
is not running, and stopped again at the end) and posts pre-built batches of mixed-channel
events from this process. A batch counts once the collector answered 202, i.e. after Kafka
committed it (acks=all, one transaction per group of concurrent requests).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import socket
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

import aiohttp
import orjson

from bench._machine import describe
from omnijourney.local import kafka
from omnijourney.settings import load_settings
from schemas.examples import examples

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _bodies(batches: int, size: int) -> list[bytes]:
    """Request bodies of `size` events each, cycling through every channel's examples."""
    pool = examples()
    bodies = []
    for _ in range(batches):
        events = [{**pool[i % len(pool)], "event_id": str(uuid.uuid4())} for i in range(size)]
        bodies.append(orjson.dumps({"batch": events}))
    return bodies


def _start_collector(port: int, secret: str) -> subprocess.Popen[bytes]:
    keys = {
        "bench": {
            "secret": secret,
            "channels": ["web", "app", "pos", "callcenter", "email", "sms", "crm"],
        }
    }
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "OMNIJOURNEY_COLLECTOR__PORT": str(port),
        "OMNIJOURNEY_COLLECTOR__WRITE_KEYS": orjson.dumps(keys).decode(),
        "OMNIJOURNEY_COLLECTOR__TRANSACTIONAL_ID": f"bench-{uuid.uuid4().hex[:8]}",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "omnijourney.cli", "collector"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def _wait_healthy(url: str, timeout_s: float = 90.0) -> None:
    deadline = time.monotonic() + timeout_s
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            try:
                async with session.get(f"{url}/health") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.3)
    raise RuntimeError(f"collector at {url} did not become healthy")


async def _run(
    url: str, secret: str, bodies: list[bytes], clients: int
) -> tuple[float, list[float]]:
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)
    latencies: list[float] = []
    headers = {"Authorization": f"Bearer {secret}", "Content-Type": "application/json"}

    async def client(session: aiohttp.ClientSession) -> None:
        while not queue.empty():
            body = queue.get_nowait()
            started = time.perf_counter()
            async with session.post(f"{url}/v1/touchpoints", data=body, headers=headers) as r:
                await r.read()
                if r.status != 202:
                    raise RuntimeError(f"collector answered {r.status}: {await r.text()}")
            latencies.append(time.perf_counter() - started)

    async with aiohttp.ClientSession() as session:
        started = time.perf_counter()
        await asyncio.gather(*(client(session) for _ in range(clients)))
        return time.perf_counter() - started, latencies


def main() -> None:
    """Parse arguments, run the collector and the clients, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=300)
    parser.add_argument("--size", type=int, default=100, help="events per request")
    parser.add_argument("--clients", type=int, default=4, help="concurrent connections")
    args = parser.parse_args()

    settings = load_settings()
    started_here = kafka.running_pid(settings) is None and not settings.kafka.bootstrap_servers
    print(kafka.start(settings))
    secret = secrets.token_urlsafe(24)
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    collector = _start_collector(port, secret)
    try:
        asyncio.run(_wait_healthy(url))
        # warm up: topics, transaction coordinator, connections
        asyncio.run(_run(url, secret, _bodies(5, args.size), 1))
        bodies = _bodies(args.batches, args.size)
        elapsed, latencies = asyncio.run(_run(url, secret, bodies, args.clients))
    finally:
        collector.terminate()
        collector.wait(timeout=60)
        if started_here:
            print(kafka.stop(settings))

    events = args.batches * args.size
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    quantiles = statistics.quantiles(latencies, n=100)
    print(f"machine: {describe()}; load average {load} (other work shares these cores)")
    print(
        f"setup: collector process + local Kafka {settings.kafka.version} at "
        f"{settings.kafka.bootstrap}; {args.clients} clients over loopback, {args.batches} "
        f"requests x {args.size} mixed-channel events ({len(bodies[0]) // 1024} KiB each)"
    )
    print(
        f"collector: {events:,} events in {elapsed:.2f} s = {events / elapsed:,.0f} events/s "
        f"({args.batches / elapsed:,.0f} requests/s); request latency p50 "
        f"{quantiles[49] * 1000:.0f} ms, p99 {quantiles[98] * 1000:.0f} ms"
    )


if __name__ == "__main__":
    main()
