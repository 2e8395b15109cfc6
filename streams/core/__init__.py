"""The pure stitching core: identity resolution, sessions and journeys (no I/O, no Faust).

Adapters call `Stitcher.admit` for a new touch, then `Stitcher.identifier_step` and
`Stitcher.customer_step` for each message, keeping one state per key; `Simulator` runs the
same steps over simulated partitions for tests and benchmarks.
"""

from streams.core.config import ChannelRule, CoreConfig, IdentifierRule, JourneyRule
from streams.core.identity import IdentifierState
from streams.core.messages import (
    ConsentNotice,
    Send,
    Tick,
    Topic,
    message_from_dict,
    message_to_dict,
)
from streams.core.model import Consent, Identifier, Touch
from streams.core.records import (
    AnonymousTouchpoint,
    ConsentChange,
    EnrichedTouchpoint,
    IdentityLink,
    JourneyUpdate,
    LinkRejection,
    Merge,
    Record,
    SessionUpdate,
)
from streams.core.simulation import Simulator
from streams.core.stitcher import CustomerState, Stitcher

__all__ = [
    "AnonymousTouchpoint",
    "ChannelRule",
    "Consent",
    "ConsentChange",
    "ConsentNotice",
    "CoreConfig",
    "CustomerState",
    "EnrichedTouchpoint",
    "Identifier",
    "IdentifierRule",
    "IdentifierState",
    "IdentityLink",
    "JourneyRule",
    "JourneyUpdate",
    "LinkRejection",
    "Merge",
    "Record",
    "Send",
    "SessionUpdate",
    "Simulator",
    "Stitcher",
    "Tick",
    "Topic",
    "Touch",
    "message_from_dict",
    "message_to_dict",
]
