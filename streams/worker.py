"""`omnijourney worker`: the Faust worker of the pipeline (ingest, stitching, erasure) with
/health, /metrics and the journey lookup (`streams.lookup`)."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime
from typing import Any

import faust
from faust.web import Request, Response, View

from omnijourney.local.admin import declare_topics, replication_of
from omnijourney.settings import Settings
from schemas.keystore import hasher_from_settings
from streams.app import ReadCommittedConsumer, create_app
from streams.erasure import register_erasure
from streams.ingest import register_ingest
from streams.lookup import register_lookup
from streams.metrics import CONTENT_TYPE, Metrics
from streams.stitching import register_stitching
from streams.topics import erasure_topics, pipeline_topics, stitching_topics

log = logging.getLogger(__name__)


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


def register_hole_guard(app: faust.App, settings: Settings, metrics: Metrics) -> None:
    """Every few seconds, read again the partitions whose commit waits on a lost hole."""
    after = settings.worker.hole_rewind_s

    @app.timer(interval=max(1.0, after / 6))  # type: ignore[untyped-decorator]
    async def rewind_holes() -> None:
        consumer = app.consumer
        if app.rebalancing or not isinstance(consumer, ReadCommittedConsumer):
            return
        for tp, offset in await consumer.rewind_holes(time.monotonic(), after):
            log.warning("%s[%d]: commit waited on a hole; reading again from %d",
                        tp.topic, tp.partition, offset)  # fmt: skip
            metrics.rewinds.labels(tp.topic, str(tp.partition)).inc()


def build(settings: Settings, *, replication_factor: int | None = None) -> faust.App:
    """The worker's app with every stage registered (Faust's topics get replication_factor)."""
    overrides = {"topic_replication_factor": replication_factor} if replication_factor else {}
    app = create_app(settings, **overrides)
    metrics = Metrics()
    hasher = hasher_from_settings(settings)
    stages = register_stitching(app, settings, metrics=metrics)
    erasure = register_erasure(app, settings, stages, clock=utc_now, metrics=metrics)
    register_ingest(
        app,
        settings,
        hasher=hasher,
        clock=utc_now,
        metrics=metrics,
        suppressed=erasure.suppressions.drops,
    )
    tables = {
        "identifiers": stages.identifiers,
        "customers": stages.customers,
        "stitcher": stages.stitcher,
    }
    register_lookup(app, tables, hasher)
    register_health(app, settings.kafka.bootstrap)
    register_metrics(app, metrics)
    register_hole_guard(app, settings, metrics)
    return app


def run(settings: Settings) -> int:
    """Create the topics, then run the worker until SIGINT/SIGTERM."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    kafka = settings.kafka
    # One replication for our topics and Faust's changelogs: three copies on a cluster of three
    # (unless set), so a lost broker neither loses table state nor stops a partition.
    replicas, min_isr = loop.run_until_complete(
        replication_of(kafka.bootstrap, kafka.replication_factor, kafka.min_insync_replicas)
    )
    loop.run_until_complete(
        declare_topics(
            kafka.bootstrap,
            (
                *pipeline_topics(settings),
                *stitching_topics(settings)[1:],
                *erasure_topics(settings),
            ),
            replication_factor=replicas,
            min_insync_replicas=min_isr,
        )
    )
    app = build(settings, replication_factor=replicas)
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
