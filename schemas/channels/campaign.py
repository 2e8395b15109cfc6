"""Email and SMS campaign touchpoints (from the campaign / messaging tool)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from schemas.envelope import TouchpointBase
from schemas.fields import Code, Properties, Url


class MessageProperties(Properties):
    """One message of a campaign to one person."""

    campaign_id: Code
    message_id: Code | None = None
    variant: Code | None = None


class ClickProperties(MessageProperties):
    """A link in the message was clicked."""

    url: Url


class _Email(TouchpointBase):
    channel: Literal["email"]


class EmailSent(_Email):
    """email / sent."""

    type: Literal["sent"]
    properties: MessageProperties


class EmailDelivered(_Email):
    """email / delivered."""

    type: Literal["delivered"]
    properties: MessageProperties


class EmailOpen(_Email):
    """email / open (tracking pixel; inflated by mail privacy proxies)."""

    type: Literal["open"]
    properties: MessageProperties


class EmailClick(_Email):
    """email / click."""

    type: Literal["click"]
    properties: ClickProperties


class _Sms(TouchpointBase):
    channel: Literal["sms"]


class SmsSent(_Sms):
    """sms / sent."""

    type: Literal["sent"]
    properties: MessageProperties


class SmsDelivered(_Sms):
    """sms / delivered (carrier delivery receipt)."""

    type: Literal["delivered"]
    properties: MessageProperties


class SmsClick(_Sms):
    """sms / click (tracked short link). SMS has no read receipts, hence no `open`."""

    type: Literal["click"]
    properties: ClickProperties


EmailTouchpoint = Annotated[
    EmailSent | EmailDelivered | EmailOpen | EmailClick, Field(discriminator="type")
]
"""Any email campaign touchpoint."""

SmsTouchpoint = Annotated[SmsSent | SmsDelivered | SmsClick, Field(discriminator="type")]
"""Any SMS campaign touchpoint."""
