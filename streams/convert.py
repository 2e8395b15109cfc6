"""From the validated edge model (`schemas`) to the core's `Touch`: pure, no I/O."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from schemas.envelope import TouchpointBase
from streams.core.model import Consent, Identifier, PropertyValue, Touch

_SCALARS = (str, int, float, bool)


def _flat_properties(properties: Any) -> dict[str, PropertyValue]:
    """Top-level scalar properties, plus the ids of nested objects (product.product_id)."""
    if properties is None:
        return {}
    data = properties.model_dump(mode="json", exclude_none=True)
    flat: dict[str, PropertyValue] = {}
    for name, value in data.items():
        if isinstance(value, _SCALARS):
            flat[name] = value
        elif isinstance(value, dict):
            for inner, item in value.items():
                # Nested objects contribute their identifying fields only (product_id, sku...).
                if inner.endswith("_id") and isinstance(item, _SCALARS):
                    flat.setdefault(inner, item)
    return flat


def _money(properties: Any) -> tuple[Decimal | None, str | None]:
    total = getattr(properties, "total", None)
    if total is None:
        return None, None
    return Decimal(total.amount), str(total.currency)


def to_touch(touchpoint: TouchpointBase) -> Touch:
    """The core's view of a validated touchpoint (unknown consent: analytics yes, the rest no)."""
    consent = touchpoint.consent
    value, currency = _money(touchpoint.properties)
    properties = _flat_properties(touchpoint.properties)
    return Touch(
        event_id=touchpoint.event_id,
        channel=touchpoint.channel,
        type=touchpoint.type,
        occurred_at=touchpoint.occurred_at,
        received_at=touchpoint.received_at,
        identities=tuple(Identifier(i.kind, i.value) for i in touchpoint.identities),
        consent=Consent(
            analytics=consent.analytics is not False,
            personalization=bool(consent.personalization),
            marketing=bool(consent.marketing),
        ),
        value=value,
        currency=currency,
        properties=properties,
    )
