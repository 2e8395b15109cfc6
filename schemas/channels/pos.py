"""Store touchpoints: tills (POS), visits and loyalty card scans."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import Field

from schemas.commerce import Basket
from schemas.envelope import TouchpointBase
from schemas.fields import Code, Properties, Slug
from schemas.identity import IdentifierKind


class StoreContext(Properties):
    """Where in the estate the event happened."""

    store_id: Code
    till_id: Code | None = None


class StoreVisitProperties(StoreContext):
    """A known person was detected in a store (app geofence, wifi login, clienteling)."""

    detected_by: Slug | None = None


class PosPurchaseProperties(StoreContext, Basket):
    """A till receipt."""

    till_id: Code
    receipt_id: Code
    payment_method: Slug | None = None


class PosReturnProperties(StoreContext, Basket):
    """Goods brought back to a till; `total` is the refunded amount (positive)."""

    till_id: Code
    receipt_id: Code
    original_receipt_id: Code | None = None
    original_order_id: Code | None = Field(
        default=None, description="The web/app order returned in store (buy online, return here)."
    )
    reason: Slug | None = None


class LoyaltyScanProperties(StoreContext):
    """A loyalty card was scanned (at a till or a kiosk)."""


class _Pos(TouchpointBase):
    channel: Literal["pos"]


class PosStoreVisit(_Pos):
    """pos / store_visit."""

    type: Literal["store_visit"]
    properties: StoreVisitProperties


class PosPurchase(_Pos):
    """pos / purchase."""

    type: Literal["purchase"]
    properties: PosPurchaseProperties


class PosReturn(_Pos):
    """pos / return."""

    type: Literal["return"]
    properties: PosReturnProperties


class PosLoyaltyScan(_Pos):
    """pos / loyalty_scan: must carry the loyalty_id scanned."""

    required_identifiers: ClassVar[frozenset[IdentifierKind]] = frozenset({"loyalty_id"})
    type: Literal["loyalty_scan"]
    properties: LoyaltyScanProperties


PosTouchpoint = Annotated[
    PosStoreVisit | PosPurchase | PosReturn | PosLoyaltyScan, Field(discriminator="type")
]
"""Any store touchpoint."""
