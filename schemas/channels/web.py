"""Web shop touchpoints (browser SDK or server-side tracking)."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from schemas.commerce import Basket, Product, Quantity
from schemas.envelope import TouchpointBase
from schemas.fields import Code, Name, Properties, Slug, Text, Url
from schemas.identity import IdentifierKind

KNOWN_PERSON: frozenset[IdentifierKind] = frozenset(
    {"customer_id", "loyalty_id", "email_hash", "phone_hash"}
)
"""Identifier kinds that name a person rather than a browser or device (what a login adds)."""


class Utm(BaseModel):
    """Campaign parameters of the landing URL (utm_*), for attribution."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    source: Name | None = None
    medium: Name | None = None
    campaign: Name | None = None
    term: Name | None = None
    content: Name | None = None


class WebContext(Properties):
    """Page context every web event may carry."""

    url: Url | None = None
    referrer: Url | None = None
    page_title: Name | None = None
    utm: Utm | None = None


class PageViewProperties(WebContext):
    """A page was shown."""

    url: Url


class ProductViewProperties(WebContext):
    """A product detail page was shown."""

    product: Product


class SearchProperties(WebContext):
    """A site search."""

    query: Annotated[Text, Field(min_length=1)]
    results: Annotated[int, Field(ge=0)] | None = None


class AddToCartProperties(WebContext):
    """A product went into the cart."""

    product: Product
    quantity: Quantity = Decimal(1)
    cart_id: Code | None = None


class CheckoutProperties(WebContext, Basket):
    """A checkout step with the basket at that point."""

    cart_id: Code | None = None
    step: Annotated[int, Field(ge=1, le=20)] | None = None


class PurchaseProperties(WebContext, Basket):
    """An order was placed."""

    order_id: Code
    coupon: Code | None = None
    payment_method: Slug | None = None


class LoginProperties(WebContext):
    """The visitor logged in (joins the browser cookie to the customer)."""

    method: Slug | None = None


class _Web(TouchpointBase):
    channel: Literal["web"]


class WebPageView(_Web):
    """web / page_view."""

    type: Literal["page_view"]
    properties: PageViewProperties


class WebProductView(_Web):
    """web / product_view."""

    type: Literal["product_view"]
    properties: ProductViewProperties


class WebSearch(_Web):
    """web / search."""

    type: Literal["search"]
    properties: SearchProperties


class WebAddToCart(_Web):
    """web / add_to_cart."""

    type: Literal["add_to_cart"]
    properties: AddToCartProperties


class WebCheckout(_Web):
    """web / checkout."""

    type: Literal["checkout"]
    properties: CheckoutProperties


class WebPurchase(_Web):
    """web / purchase."""

    type: Literal["purchase"]
    properties: PurchaseProperties


class WebLogin(_Web):
    """web / login: must carry the person's identifier next to the cookie."""

    required_identifiers: ClassVar[frozenset[IdentifierKind]] = KNOWN_PERSON
    type: Literal["login"]
    properties: LoginProperties = Field(default_factory=LoginProperties)


WebTouchpoint = Annotated[
    WebPageView | WebProductView | WebSearch | WebAddToCart | WebCheckout | WebPurchase | WebLogin,
    Field(discriminator="type"),
]
"""Any web touchpoint."""
