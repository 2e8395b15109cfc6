"""`omnijourney worker`: the Faust worker of the pipeline (ingest so far) with /health."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import faust
from faust.web import Request, Response, View

from omnijourney.local.admin import declare_topics
from omnijourney.settings import Settings
from schemas.keystore import hasher_from_settings
from streams.app import create_app
from streams.ingest import register_ingest
from streams.metrics import CONTENT_TYPE, Metrics
from streams.stitching import register_stitching
from streams.topics import pipeline_topics, stitching_topics


def utc_now() -> datetime:
    """The wall clock, timezone-aware UTC."""
    return datetime.now(UTC)


async def broker_reachable(bootstrap: str, timeout_s: float = 1.0) -> bool:
    """Whether some bootstrap server accepts a TCP connection (cheap; not a Kafka request)."""
    for server in bootstrap.split(","):
        host, _, port = server.strip().rpartition(":")
        try:
            async with asyncio.timeout(timeout_s):
                _, writer = await asyncio.open_connection(host or "127.0.0.1", int(port))
        except (OSError, TimeoutError, ValueError):
            continue
        writer.close()
        return True
    return False


def health(app: faust.App, *, broker_up: bool) -> tuple[bool, dict[str, Any]]:
    """Whether the worker consumes: started, not rebalancing, partitions assigned, broker up."""
    consumer = app.consumer
    assigned = len(consumer.assignment())
    state = consumer.state
    ok = state == "running" and not app.rebalancing and assigned > 0 and broker_up
    return ok, {
        "status": "ok" if ok else "unavailable",
        "consumer": state,
        "rebalancing": app.rebalancing,
        "assigned_partitions": assigned,
        "broker": "reachable" if broker_up else "unreachable",
    }


def register_health(app: faust.App, bootstrap: str) -> None:
    """GET /health on the worker's web port: 200 when consuming, 503 otherwise."""

    @app.page("/health")
    async def health_view(web: View, request: Request) -> Response:
        ok, body = health(app, broker_up=await broker_reachable(bootstrap))
        return web.json(body, status=200 if ok else 503)


def observe_lag(app: faust.App, metrics: Metrics) -> None:
    """Set the lag gauge of every assigned partition (highwater minus the last read offset)."""
    consumer = app.consumer
    metrics.lag.clear()
    for tp in consumer.assignment():
        read = consumer._read_offset.get(tp)  # type: ignore[attr-defined]  # no public accessor
        highwater = consumer.highwater(tp)
        if highwater is None:
            continue
        behind = highwater - (read + 1 if read is not None else 0)
        metrics.lag.labels(tp.topic, str(tp.partition)).set(max(0, behind))


def register_metrics(app: faust.App, metrics: Metrics) -> None:
    """GET /metrics on the worker's web port: the Prometheus text format."""

    @app.page("/metrics")
    async def metrics_view(web: View, request: Request) -> Response:
        observe_lag(app, metrics)
        return web.bytes(metrics.exposition(), content_type=CONTENT_TYPE.split(";")[0])


def build(settings: Settings) -> faust.App:
    """The worker's app with every stage registered."""
    app = create_app(settings)
    metrics = Metrics()
    hasher = hasher_from_settings(settings)
    register_ingest(app, settings, hasher=hasher, clock=utc_now, metrics=metrics)
    register_stitching(app, settings, metrics=metrics)
    register_health(app, settings.kafka.bootstrap)
    register_metrics(app, metrics)
    return app


def run(settings: Settings) -> int:
    """Create the topics, then run the worker until SIGINT/SIGTERM."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    loop.run_until_complete(
        declare_topics(
            settings.kafka.bootstrap,
            (*pipeline_topics(settings), *stitching_topics(settings)[1:]),
            replication_factor=settings.topics.replication_factor,
        )
    )
    app = build(settings)
    faust_worker(app, settings, loop).execute_from_commandline()


def faust_worker(
    app: faust.App, settings: Settings, loop: asyncio.AbstractEventLoop
) -> faust.Worker:
    """Faust's worker of the app, logging at the settings' level, without the spinner."""
    worker = faust.Worker(app, loop=loop, loglevel=settings.worker.log_level)
    # At warning and above faust.Worker draws a terminal spinner fed by a root handler at
    # DEBUG: the root logger goes to DEBUG and every library's debug record is built and
    # formatted (about 40% of a worker's CPU). No spinner: the root keeps the setting's level.
    worker.spinner = None
    return worker
