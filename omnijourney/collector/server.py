"""The collector's aiohttp application: authenticate, admit, deliver, answer."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import orjson
from aiohttp import web

from omnijourney.collector.delivery import Delivery
from omnijourney.collector.intake import (
    MAX_ERASURE_BODY_BYTES,
    AcceptedBody,
    ErasureAcceptedBody,
    Refusal,
    admit,
    admit_erasure,
    refusal,
)
from omnijourney.collector.keys import (
    AdminKey,
    Keyring,
    admin_key_from_settings,
    bearer_token,
    keyring_from_settings,
)
from omnijourney.collector.openapi import (
    ERASURE_PATH,
    TOUCHPOINTS_PATH,
    docs_page,
    openapi_document,
)
from omnijourney.exceptions import KafkaUnavailable, Overloaded
from omnijourney.settings import CollectorSettings, Settings
from schemas.keystore import hasher_from_settings
from schemas.pii import PiiHasher
from schemas.privacy import request_record
from streams.topics import collector_topics, privacy_topics

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
_AUTH_CHALLENGE: Final = {"WWW-Authenticate": 'Bearer realm="omnijourney"'}
ADMIN_ACTOR: Final = "collector:admin-key"
"""requested_by of the erasure requests the collector accepts (who asked: the admin key)."""


def new_request_id() -> str:
    """A fresh, unguessable erasure request id."""
    return f"er-{uuid.uuid4()}"


def utc_now() -> datetime:
    """The wall clock, timezone-aware UTC."""
    return datetime.now(UTC)


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> web.Response:
    data = body.model_dump(mode="json") if hasattr(body, "model_dump") else body
    return web.Response(
        status=status, body=orjson.dumps(data), content_type="application/json", headers=headers
    )


def _refused(result: Refusal, headers: dict[str, str] | None = None) -> web.Response:
    return _json(result.status, result.body, headers)


@dataclass(frozen=True, slots=True)
class Collector:
    """What the request handlers need: limits, keys, the PII hasher, Kafka and a clock."""

    limits: CollectorSettings
    keyring: Keyring
    hasher: PiiHasher
    delivery: Delivery
    clock: Clock = utc_now
    admin: AdminKey | None = None
    request_ids: Callable[[], str] = new_request_id

    async def touchpoints(self, request: web.Request) -> web.Response:
        """POST /v1/touchpoints: one event or a batch, answered once committed to Kafka."""
        token = bearer_token(request.headers.get("Authorization"))
        grant = None if token is None else self.keyring.grant(token)
        if grant is None:
            why = "missing write key" if token is None else "unknown write key"
            return _refused(
                refusal(401, "unauthorized", f"{why}: send Authorization: Bearer <key>"),
                _AUTH_CHALLENGE,
            )
        limit = self.limits.max_body_bytes
        if request.content_length is not None and request.content_length > limit:
            return self._too_large(request.content_length)
        try:
            raw = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return self._too_large(None)
        received_at = self.clock()
        result = admit(
            raw,
            grant=grant,
            received_at=received_at,
            hasher=self.hasher,
            max_events=self.limits.max_batch_events,
            max_bytes=limit,
        )
        if isinstance(result, Refusal):
            return _refused(result)
        try:
            await self.delivery.deliver(result.records)
        except (KafkaUnavailable, Overloaded) as exc:
            reason = "overloaded" if isinstance(exc, Overloaded) else "kafka_unavailable"
            return _refused(
                refusal(503, reason, f"{exc}; nothing was accepted, retry the same request"),
                {"Retry-After": str(self.limits.retry_after_s)},
            )
        body = AcceptedBody(accepted=len(result.records), received_at=received_at)
        return _json(202, body)

    async def erasure(self, request: web.Request) -> web.Response:
        """POST /v1/privacy/erasure: an erasure request, answered once committed to Kafka."""
        token = bearer_token(request.headers.get("Authorization"))
        if token is None:
            return _refused(
                refusal(401, "unauthorized", "missing admin key: send Authorization: Bearer <key>"),
                _AUTH_CHALLENGE,
            )
        if self.admin is None:
            return _refused(
                refusal(
                    403,
                    "admin_disabled",
                    "no admin key is configured (collector.admin_key): erasure over HTTP is off",
                )
            )
        if not self.admin.matches(token):
            return _refused(refusal(403, "forbidden", "this key may not request erasures"))
        if request.content_length is not None and request.content_length > MAX_ERASURE_BODY_BYTES:
            return self._too_large(request.content_length, MAX_ERASURE_BODY_BYTES)
        try:
            raw = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return self._too_large(None)
        received_at = self.clock()
        result = admit_erasure(
            raw,
            request_id=self.request_ids(),
            received_at=received_at,
            requested_by=ADMIN_ACTOR,
            hasher=self.hasher,
        )
        if isinstance(result, Refusal):
            return _refused(result)
        try:
            await self.delivery.deliver([request_record(result)])
        except (KafkaUnavailable, Overloaded) as exc:
            reason = "overloaded" if isinstance(exc, Overloaded) else "kafka_unavailable"
            return _refused(
                refusal(
                    503,
                    reason,
                    f"{exc}; the request was not accepted, retry it (with the same request_id "
                    "if you sent one)",
                ),
                {"Retry-After": str(self.limits.retry_after_s)},
            )
        log.info("erasure request %s accepted", result.request_id)  # never its identifiers
        body = ErasureAcceptedBody(
            request_id=result.request_id,
            requested_at=received_at,
            identifiers=len(result.identifiers),
            suppress_future=result.suppress_future,
        )
        return _json(202, body)

    def _too_large(self, size: int | None, limit: int | None = None) -> web.Response:
        limit = limit or self.limits.max_body_bytes
        told = f"body of {size} bytes" if size is not None else "body"
        return _refused(refusal(413, "too_large", f"{told} exceeds the limit of {limit} bytes"))

    async def health(self, request: web.Request) -> web.Response:
        """GET /health: 200 while the Kafka producer is connected, else 503."""
        if self.delivery.connected:
            return _json(200, {"status": "ok", "kafka": "connected"})
        return _json(
            503,
            {"status": "unavailable", "kafka": self.delivery.last_error or "not connected"},
            {"Retry-After": str(self.limits.retry_after_s)},
        )


def create_app(collector: Collector) -> web.Application:
    """The aiohttp application; the Kafka delivery starts and stops with it."""
    limits = collector.limits
    # aiohttp refuses larger bodies while reading; a margin so our own 413 answers first
    app = web.Application(client_max_size=limits.max_body_bytes + 1)
    document = openapi_document(
        max_events=limits.max_batch_events, max_body_bytes=limits.max_body_bytes
    )
    openapi_body = orjson.dumps(document)
    docs_body = docs_page(document)

    async def openapi(request: web.Request) -> web.Response:
        return web.Response(body=openapi_body, content_type="application/json")

    async def docs(request: web.Request) -> web.Response:
        return web.Response(text=docs_body, content_type="text/html")

    async def lifecycle(app: web.Application) -> Any:
        await collector.delivery.start()
        yield
        await collector.delivery.stop()

    app.cleanup_ctx.append(lifecycle)
    app.router.add_post(TOUCHPOINTS_PATH, collector.touchpoints)
    app.router.add_post(ERASURE_PATH, collector.erasure)
    app.router.add_get("/health", collector.health)
    app.router.add_get("/openapi.json", openapi)
    app.router.add_get("/docs", docs)
    return app


def transactional_id(settings: Settings) -> str:
    """The collector's Kafka transactional.id: configured, or host name and port."""
    configured = settings.collector.transactional_id
    return configured or f"omnijourney-collector-{socket.gethostname()}-{settings.collector.port}"


def build(
    settings: Settings, *, allow_dev_key: bool = False, clock: Clock = utc_now
) -> tuple[Collector, str | None]:
    """The collector of the settings, and the generated dev key's token if one was made."""
    keyring, dev_token = keyring_from_settings(settings.collector, allow_dev_key=allow_dev_key)
    delivery = Delivery(
        bootstrap=settings.kafka.bootstrap,
        transactional_id=transactional_id(settings),
        timeout_s=settings.collector.kafka_timeout_s,
        max_pending=settings.collector.max_pending_requests,
        topics=(*collector_topics(settings), *privacy_topics(settings)),
        replication_factor=settings.kafka.replication_factor,
        min_insync_replicas=settings.kafka.min_insync_replicas,
    )
    collector = Collector(
        limits=settings.collector,
        keyring=keyring,
        hasher=hasher_from_settings(settings),
        delivery=delivery,
        clock=clock,
        admin=admin_key_from_settings(settings.collector),
    )
    return collector, dev_token


async def serve(settings: Settings, *, allow_dev_key: bool = False) -> None:
    """Run the collector until SIGINT or SIGTERM, then finish the requests in flight."""
    collector, dev_token = build(settings, allow_dev_key=allow_dev_key)
    runner = web.AppRunner(create_app(collector), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, settings.collector.host, settings.collector.port)
    await site.start()
    host, port = runner.addresses[0][:2]
    print(
        f"collector listening on http://{host}:{port} (docs: /docs), Kafka at "
        f"{settings.kafka.bootstrap}, write keys: {', '.join(collector.keyring.names())}, "
        f"erasure endpoint: {'on' if collector.admin is not None else 'off (no admin key)'}",
        flush=True,
    )
    if dev_token is not None:
        print(f"dev write key (every channel; shown once, not stored): {dev_token}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(Exception):
                loop.remove_signal_handler(signum)
        await runner.cleanup()
    print("collector stopped", flush=True)
