"""Typed identifiers of a person, the edge hashing of clear emails/phones, and key choice."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Final, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError

from omnijourney.exceptions import InvalidPii, InvalidTouchpoint
from schemas.fields import edge_hasher
from schemas.limits import MAX_ID_CHARS
from schemas.pii import looks_like_email
from schemas.placeholders import placeholder_reason

IdentifierKind = Literal[
    "anonymous_id", "device_id", "customer_id", "loyalty_id", "email_hash", "phone_hash"
]
"""Kinds a validated touchpoint holds: never a clear email or phone."""

EdgeIdentifierKind = Literal["email", "phone"]
"""Clear kinds accepted only at the edge, which replaces them by their keyed hashes."""

IDENTIFIER_KINDS: Final[tuple[IdentifierKind, ...]] = get_args(IdentifierKind)
EDGE_IDENTIFIER_KINDS: Final[tuple[EdgeIdentifierKind, ...]] = get_args(EdgeIdentifierKind)

IDENTIFIER_PRIORITY: Final[tuple[IdentifierKind, ...]] = (
    "customer_id",
    "loyalty_id",
    "email_hash",
    "phone_hash",
    "device_id",
    "anonymous_id",
)
"""Strongest first: the order that picks an event's Kafka key."""

_HASH_KINDS: Final = frozenset({"email_hash", "phone_hash"})
_HEX_DIGEST: Final = re.compile(r"^[0-9a-f]{64}$")
_RANK: Final = {kind: rank for rank, kind in enumerate(IDENTIFIER_PRIORITY)}


class Identifier(BaseModel):
    """One identifier of the person behind a touchpoint."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: IdentifierKind = Field(
        description="At the edge also 'email' or 'phone' (clear), replaced by their hashes."
    )
    value: str = Field(
        description="The identifier; email_hash/phone_hash are hex HMAC-SHA256 of the "
        "normalized address (lower case) or E.164 number."
    )

    @model_validator(mode="before")
    @classmethod
    def _hash_clear_pii(cls, data: Any, info: ValidationInfo) -> Any:
        if not isinstance(data, dict) or data.get("kind") not in EDGE_IDENTIFIER_KINDS:
            return data
        kind = data["kind"]
        hasher = edge_hasher(info)
        if hasher is None:
            raise PydanticCustomError(
                "clear_pii",
                "clear {kind} identifiers are accepted only at the edge, which hashes them; "
                "past it send kind '{kind}_hash'",
                {"kind": kind, "field": "kind"},
            )
        if "value" not in data:
            raise PydanticCustomError("missing", "Field required", {"field": "value"})
        value = data["value"]
        if not isinstance(value, str):
            raise PydanticCustomError("wrong_type", "Input should be a string", {"field": "value"})
        try:
            hashed = hasher.email_hash(value) if kind == "email" else hasher.phone_hash(value)
        except InvalidPii as exc:
            raise PydanticCustomError(
                "invalid_pii", "{detail}", {"detail": str(exc), "field": "value"}
            ) from None
        return {**data, "kind": f"{kind}_hash", "value": hashed}

    @field_validator("value")
    @classmethod
    def _usable(cls, value: str, info: ValidationInfo) -> str:
        kind = info.data.get("kind")
        if kind is None:
            return value  # the kind already failed; its error says enough
        value = value.strip()
        reason = placeholder_reason(value)
        if reason is not None:
            raise PydanticCustomError("blocked_identifier", "{detail}", {"detail": reason})
        if kind in _HASH_KINDS:
            value = value.lower()
            if not _HEX_DIGEST.match(value):
                raise PydanticCustomError(
                    "invalid_value",
                    "{kind} must be the 64 hex characters of an HMAC-SHA256; "
                    "clear addresses go to the edge as kind 'email' or 'phone'",
                    {"kind": kind},
                )
            return value
        if len(value) > MAX_ID_CHARS:
            raise PydanticCustomError(
                "invalid_value", "identifiers hold at most {n} characters", {"n": MAX_ID_CHARS}
            )
        if not value.isprintable():
            raise PydanticCustomError("invalid_value", "control characters are not allowed")
        if looks_like_email(value):
            raise PydanticCustomError(
                "clear_pii",
                "looks like a clear email address; send it as kind 'email' so the edge hashes it",
            )
        return value


def strongest_identifier(identities: Sequence[Identifier]) -> Identifier:
    """The identifier that keys the event: highest kind in IDENTIFIER_PRIORITY, then lowest value.

    Ties break on the value so the choice does not depend on the producer's list order.
    """
    if not identities:
        raise InvalidTouchpoint(
            "no_identifier",
            [{"loc": "identities", "msg": "no identifier to key by", "reason": "no_identifier"}],
        )
    return min(identities, key=lambda ident: (_RANK[ident.kind], ident.value))


def identifier_key(identifier: Identifier) -> bytes:
    """Kafka key bytes of an identifier (`kind:value`)."""
    return f"{identifier.kind}:{identifier.value}".encode()
