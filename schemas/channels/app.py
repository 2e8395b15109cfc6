"""Mobile app touchpoints (iOS / Android SDK)."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, ClassVar, Literal

from pydantic import Field

from schemas.channels.web import KNOWN_PERSON
from schemas.commerce import Basket, Product, Quantity
from schemas.envelope import TouchpointBase
from schemas.fields import Code, Name, Properties, Slug, Url
from schemas.identity import IdentifierKind


class AppContext(Properties):
    """App context every app event may carry."""

    app_version: Code | None = None
    os: Literal["ios", "android", "other"] | None = None
    screen_name: Name | None = None


class ScreenViewProperties(AppContext):
    """A screen was shown."""

    screen_name: Name
    screen_class: Code | None = None


class AppProductViewProperties(AppContext):
    """A product screen was shown."""

    product: Product


class AppAddToCartProperties(AppContext):
    """A product went into the cart."""

    product: Product
    quantity: Quantity = Decimal(1)
    cart_id: Code | None = None


class AppPurchaseProperties(AppContext, Basket):
    """An order was placed in the app."""

    order_id: Code
    coupon: Code | None = None
    payment_method: Slug | None = None


class PushOpenProperties(AppContext):
    """A push notification was opened."""

    campaign_id: Code
    message_id: Code | None = None
    deep_link: Url | None = None


class AppLoginProperties(AppContext):
    """The user logged in (joins the device to the customer)."""

    method: Slug | None = None


class _App(TouchpointBase):
    channel: Literal["app"]


class AppScreenView(_App):
    """app / screen_view."""

    type: Literal["screen_view"]
    properties: ScreenViewProperties


class AppProductView(_App):
    """app / product_view."""

    type: Literal["product_view"]
    properties: AppProductViewProperties


class AppAddToCart(_App):
    """app / add_to_cart."""

    type: Literal["add_to_cart"]
    properties: AppAddToCartProperties


class AppPurchase(_App):
    """app / purchase."""

    type: Literal["purchase"]
    properties: AppPurchaseProperties


class AppPushOpen(_App):
    """app / push_open."""

    type: Literal["push_open"]
    properties: PushOpenProperties


class AppLogin(_App):
    """app / login: must carry the person's identifier next to the device id."""

    required_identifiers: ClassVar[frozenset[IdentifierKind]] = KNOWN_PERSON
    type: Literal["login"]
    properties: AppLoginProperties = Field(default_factory=AppLoginProperties)


AppTouchpoint = Annotated[
    AppScreenView | AppProductView | AppAddToCart | AppPurchase | AppPushOpen | AppLogin,
    Field(discriminator="type"),
]
"""Any app touchpoint."""
