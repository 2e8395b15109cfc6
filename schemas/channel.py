"""The channels a touchpoint can come from."""

from __future__ import annotations

from typing import Final, Literal, get_args

Channel = Literal["web", "app", "pos", "callcenter", "email", "sms", "crm"]
CHANNELS: Final[tuple[Channel, ...]] = get_args(Channel)
