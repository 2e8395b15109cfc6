"""From the validated edge model (`schemas`) to the core's `Touch`: pure, no I/O."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from decimal import Decimal
from typing import Any

from omnijourney.settings import Settings
from schemas.envelope import TouchpointBase
from streams.core.config import CoreConfig
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


def core_config(settings: Settings) -> CoreConfig:
    """The core's rules with the settings' overrides (allowed lateness by channel)."""
    base = CoreConfig()
    overrides = settings.worker.allowed_lateness_h
    if not overrides:
        return base
    every = overrides.get("*")

    def lateness(name: str, rule: Any) -> Any:
        hours = overrides.get(name, every)
        return rule if hours is None else replace(rule, allowed_lateness=timedelta(hours=hours))

    channels = {name: lateness(name, rule) for name, rule in base.channels.items()}
    for name in overrides.keys() - channels.keys() - {"*"}:
        channels[name] = lateness(name, base.default_channel)
    config = replace(base, channels=channels, default_channel=lateness("*", base.default_channel))
    # Event ids must be remembered at least as long as events may still be placed.
    return replace(config, dedupe_horizon=max(base.dedupe_horizon, config.max_lateness))
