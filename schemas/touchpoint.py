"""Any touchpoint: the union over channels, the (channel, type) registry and JSON encoding."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Final, get_args

import orjson
from pydantic import Field

from schemas.channel import Channel
from schemas.channels.app import AppTouchpoint
from schemas.channels.callcenter import CallcenterTouchpoint
from schemas.channels.campaign import EmailTouchpoint, SmsTouchpoint
from schemas.channels.crm import CrmTouchpoint
from schemas.channels.pos import PosTouchpoint
from schemas.channels.web import WebTouchpoint
from schemas.envelope import TouchpointBase

Touchpoint = Annotated[
    WebTouchpoint
    | AppTouchpoint
    | PosTouchpoint
    | CallcenterTouchpoint
    | EmailTouchpoint
    | SmsTouchpoint
    | CrmTouchpoint,
    Field(discriminator="channel"),
]
"""Any validated touchpoint, discriminated on `channel` then on `type`."""

CHANNEL_UNIONS: Final[Mapping[Channel, Any]] = {
    "web": WebTouchpoint,
    "app": AppTouchpoint,
    "pos": PosTouchpoint,
    "callcenter": CallcenterTouchpoint,
    "email": EmailTouchpoint,
    "sms": SmsTouchpoint,
    "crm": CrmTouchpoint,
}
"""Each channel's union of touchpoint models (for JSON Schema export)."""


def _members(channel_union: Any) -> tuple[type[TouchpointBase], ...]:
    union = get_args(channel_union)[0]
    return get_args(union) or (union,)


def _type_of(model: type[TouchpointBase]) -> str:
    value: str = get_args(model.model_fields["type"].annotation)[0]
    return value


MODELS: Final[Mapping[Channel, Mapping[str, type[TouchpointBase]]]] = {
    channel: {_type_of(model): model for model in _members(union)}
    for channel, union in CHANNEL_UNIONS.items()
}
"""The model of every (channel, type)."""


def model_for(channel: str, type_: str) -> type[TouchpointBase] | None:
    """The model validating touchpoints of `channel` and `type_`, or None if there is none."""
    models = MODELS.get(channel)  # type: ignore[call-overload]
    return None if models is None else models.get(type_)


def encode_touchpoint(touchpoint: TouchpointBase) -> bytes:
    """The validated touchpoint as compact JSON (Decimal amounts as strings, times in UTC)."""
    return orjson.dumps(touchpoint.model_dump(mode="json", exclude_none=True))


def input_payload(touchpoint: TouchpointBase) -> dict[str, Any]:
    """The touchpoint as a producer sends it: device event time, no edge-set fields.

    Identifiers stay hashed and free text stays scrubbed, so this is safe to put on a topic.
    """
    data = touchpoint.model_dump(mode="json", exclude_none=True)
    data.pop("received_at", None)
    device = data.pop("device_occurred_at", None)
    if device is not None:
        data["occurred_at"] = device
    return data


def encode_input(touchpoint: TouchpointBase) -> bytes:
    """`input_payload` as JSON bytes: what a direct Kafka producer writes to its channel topic."""
    return orjson.dumps(input_payload(touchpoint))
