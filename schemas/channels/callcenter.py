"""Call center touchpoints (from the telephony / contact-center platform)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from schemas.envelope import TouchpointBase
from schemas.fields import Code, Properties, Slug

CallOutcome = Literal[
    "resolved",
    "escalated",
    "callback_scheduled",
    "transferred",
    "order_placed",
    "abandoned",
    "no_answer",
    "other",
]


class CallContext(Properties):
    """The call; the caller's number travels only as a phone / phone_hash identifier."""

    call_id: Code
    direction: Literal["inbound", "outbound"] = "inbound"
    queue: Slug | None = None
    agent_id: Code | None = None
    reason: Slug | None = Field(
        default=None, description="Why the person called, e.g. order_status, return, complaint."
    )
    order_id: Code | None = None


class CallStartedProperties(CallContext):
    """A call was answered (or placed)."""


class CallEndedProperties(CallContext):
    """A call ended."""

    outcome: CallOutcome
    duration_s: Annotated[int, Field(ge=0, le=86_400, description="Talk time in seconds.")]


class _Callcenter(TouchpointBase):
    channel: Literal["callcenter"]


class CallStarted(_Callcenter):
    """callcenter / call_started."""

    type: Literal["call_started"]
    properties: CallStartedProperties


class CallEnded(_Callcenter):
    """callcenter / call_ended."""

    type: Literal["call_ended"]
    properties: CallEndedProperties


CallcenterTouchpoint = Annotated[CallStarted | CallEnded, Field(discriminator="type")]
"""Any call center touchpoint."""
