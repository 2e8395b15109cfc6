"""`omnijourney privacy erase`: build an erasure request at the edge and put it on Kafka.

The request is built exactly as the collector builds one (`schemas.privacy`): clear email and
phone are hashed with the configured key, anything invalid is refused naming the field, and
nothing is produced then. The request is produced to `privacy.requests` keyed by its id.
"""

from __future__ import annotations

import asyncio
import os
import pwd
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from omnijourney.exceptions import (
    FieldError,
    InvalidErasureRequest,
    KafkaUnavailable,
    ServiceError,
)
from omnijourney.kafka_options import client_options
from omnijourney.local.admin import declare_topics
from omnijourney.settings import Settings
from schemas.keystore import hasher_from_settings
from schemas.privacy import (
    ErasureRequest,
    build_request,
    erasure_input,
    parse_identifier_option,
    request_record,
)
from streams.topics import privacy_topics

Clock = Callable[[], datetime]


def operator() -> str:
    """`cli:<account>` of the user running the command (who asked, for the audit)."""
    try:
        return f"cli:{pwd.getpwuid(os.getuid()).pw_name}"
    except KeyError:
        return f"cli:uid-{os.getuid()}"


def new_request_id() -> str:
    """A fresh, unguessable request id."""
    return f"er-{uuid.uuid4()}"


def command_request(
    settings: Settings,
    identifiers: Sequence[str],
    *,
    suppress_future: bool = False,
    request_id: str | None = None,
    requested_by: str | None = None,
    clock: Clock = lambda: datetime.now(UTC),
) -> ErasureRequest:
    """The request of `--identifier TYPE:VALUE ...`; InvalidErasureRequest names the field."""
    parsed: list[dict[str, str]] = []
    errors: list[FieldError] = []
    for index, option in enumerate(identifiers):
        try:
            parsed.append(parse_identifier_option(option, index))
        except InvalidErasureRequest as exc:
            errors.extend(exc.errors)
    if errors:
        raise InvalidErasureRequest(errors[0]["reason"], errors)
    data: dict[str, object] = {"identifiers": parsed, "suppress_future": suppress_future}
    if request_id is not None:
        data["request_id"] = request_id
    erasure = erasure_input(data, hasher_from_settings(settings))
    return build_request(
        erasure,
        request_id=new_request_id(),
        requested_at=clock(),
        requested_by=requested_by or operator(),
    )


async def publish(settings: Settings, request: ErasureRequest, timeout_s: float = 30.0) -> None:
    """Produce the request (acks=all, idempotent); KafkaUnavailable if Kafka does not take it."""
    record = request_record(request)
    try:
        async with asyncio.timeout(timeout_s):
            await declare_topics(
                settings.kafka.bootstrap,
                privacy_topics(settings),
                replication_factor=settings.kafka.replication_factor,
                min_insync_replicas=settings.kafka.min_insync_replicas,
                timeout_s=timeout_s,
            )
            producer = AIOKafkaProducer(
                **client_options(settings.kafka), acks="all", enable_idempotence=True
            )
            await producer.start()
            try:
                await producer.send_and_wait(record.topic, record.value, key=record.key)
            finally:
                await producer.stop()
    except (KafkaError, OSError, TimeoutError, ServiceError) as exc:
        raise KafkaUnavailable(
            f"Kafka at {settings.kafka.bootstrap} did not confirm the request "
            f"({exc or 'timeout'}); run the command again with --request-id "
            f"{request.request_id} (one id is erased once, however often it is sent)"
        ) from None
