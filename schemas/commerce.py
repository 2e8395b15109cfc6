"""Money, products and basket lines: the commerce part of touchpoint properties."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)
from pydantic_core import PydanticCustomError

from schemas.currency import ISO_4217
from schemas.fields import Code, Name, Properties
from schemas.limits import MAX_LINES


def _upper(value: object) -> object:
    return value.strip().upper() if isinstance(value, str) else value


def _iso_4217(value: str) -> str:
    if value not in ISO_4217:
        raise PydanticCustomError("invalid_value", "not an ISO 4217 currency code in circulation")
    return value


Currency = Annotated[
    str,
    BeforeValidator(_upper),
    StringConstraints(pattern=r"^[A-Z]{3}$"),
    AfterValidator(_iso_4217),
]
"""An ISO 4217 currency code (EUR, USD, GBP...)."""

Amount = Annotated[Decimal, Field(ge=0, max_digits=18, decimal_places=4)]
"""A non-negative amount; send it as a string ("19.99") to avoid float rounding."""

Quantity = Annotated[Decimal, Field(gt=0, le=100_000, max_digits=12, decimal_places=3)]
"""Units, or a weight for goods sold by weight."""


class Money(BaseModel):
    """An amount in one currency (a Decimal, never a float)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    amount: Amount
    currency: Currency


class Product(BaseModel):
    """A product as shown or added to a cart."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    product_id: Code
    sku: Code | None = None
    name: Name | None = None
    category: Name | None = None
    brand: Name | None = None
    variant: Name | None = None
    price: Money | None = None


class Line(BaseModel):
    """One line of a basket, an order or a receipt."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    product_id: Code
    sku: Code | None = None
    name: Name | None = None
    category: Name | None = None
    quantity: Quantity = Decimal(1)
    unit_price: Money
    discount: Money | None = None


Lines = Annotated[tuple[Line, ...], Field(min_length=1, max_length=MAX_LINES)]


def check_one_currency(total: Money, others: dict[str, Money | None]) -> None:
    """Raise a field error at the first amount whose currency differs from `total`'s."""
    for path, money in others.items():
        if money is not None and money.currency != total.currency:
            raise PydanticCustomError(
                "invalid_value",
                "every amount of one event must be in the currency of total ({currency})",
                {"currency": total.currency, "field": f"{path}.currency"},
            )


class Basket(Properties):
    """Lines and totals of a checkout, an order, a receipt or a return."""

    lines: Lines
    total: Money
    tax: Money | None = None
    shipping: Money | None = None
    discount: Money | None = None

    @model_validator(mode="after")
    def _one_currency(self) -> Self:
        amounts: dict[str, Money | None] = {
            "tax": self.tax,
            "shipping": self.shipping,
            "discount": self.discount,
        }
        for index, line in enumerate(self.lines):
            amounts[f"lines.{index}.unit_price"] = line.unit_price
            amounts[f"lines.{index}.discount"] = line.discount
        check_one_currency(self.total, amounts)
        return self
