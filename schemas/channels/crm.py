"""CRM touchpoints: customer registry updates that tie ids together."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import Field

from schemas.envelope import TouchpointBase
from schemas.fields import Code, Properties, UtcDatetime
from schemas.identity import IdentifierKind


class CustomerUpdateProperties(Properties):
    """A customer record was created or changed; its identifiers are in `identities`."""

    action: Literal["created", "updated"] = "updated"
    loyalty_tier: Code | None = None
    home_store_id: Code | None = None
    registered_at: UtcDatetime | None = None


class CrmCustomerUpdate(TouchpointBase):
    """crm / customer_update: customer_id plus the loyalty card, email and phone hashes."""

    required_identifiers: ClassVar[frozenset[IdentifierKind]] = frozenset({"customer_id"})
    channel: Literal["crm"]
    type: Literal["customer_update"]
    properties: CustomerUpdateProperties = Field(default_factory=CustomerUpdateProperties)


CrmTouchpoint = Annotated[CrmCustomerUpdate, Field(discriminator="type")]
"""Any CRM touchpoint."""
