"""Privacy contracts: erasure requests (`privacy.requests`) and receipts (`privacy.receipts`).

A request names a person by typed identifiers. Emails and phone numbers travel only as keyed
hashes: clear ones are accepted at the edge (collector, CLI), which hashes them with the same
key and rules as touchpoints (`schemas.identity.Identifier` with the edge's PiiHasher), and are
refused anywhere else. A receipt proves what was removed from which store and when; it carries
no personal data at all: no identifier, no customer id, only counts, store names and times.

Pure: time and request ids are passed in.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any, Final, Literal

import orjson
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    StringConstraints,
    ValidationError,
    model_validator,
)
from pydantic_core import PydanticCustomError

from omnijourney.exceptions import FieldError, InvalidErasureRequest
from schemas.contracts import Timestamp
from schemas.fields import PII_CONTEXT_KEY
from schemas.identity import Identifier, identifier_key
from schemas.pii import PiiHasher, looks_like_email
from schemas.topics import PRIVACY_RECEIPTS_TOPIC, PRIVACY_REQUESTS_TOPIC, Record
from schemas.validation import field_errors, primary_reason

__all__ = [
    "MAX_ERASURE_IDENTIFIERS",
    "PRIVACY_CONTRACT_VERSION",
    "PRIVACY_RECEIPTS_TOPIC",
    "PRIVACY_REQUESTS_TOPIC",
    "ErasureInput",
    "ErasureReceipt",
    "ErasureRequest",
    "StoreReceipt",
    "build_request",
    "decode_receipt",
    "decode_request",
    "erasure_input",
    "identifier_keys",
    "parse_identifier_option",
    "receipt_record",
    "request_record",
]

PRIVACY_CONTRACT_VERSION: Final = 1
"""Major version of the privacy records; a newer major is refused."""
MAX_ERASURE_IDENTIFIERS: Final = 64
"""Identifiers one request may name."""
_MAX_COUNT: Final = 2**63 - 1

RequestId = Annotated[StrictStr, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")]
"""Names one request across retries and restarts (the key of both privacy topics)."""

StoreName = Annotated[StrictStr, StringConstraints(pattern=r"^[a-z][a-z0-9_.:-]{0,127}$")]
"""Where something was removed, e.g. `clickhouse.touchpoints` (never personal data)."""

RemovedCount = Annotated[StrictInt, Field(ge=0, le=_MAX_COUNT)]


def _actor(value: str) -> str:
    if not value.isprintable():
        raise PydanticCustomError("invalid_value", "control characters are not allowed")
    if looks_like_email(value):
        raise PydanticCustomError(
            "clear_pii", "name the operator by an account or key name, not an email address"
        )
    return value


Actor = Annotated[
    StrictStr,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=128),
    AfterValidator(_actor),
]
"""Who asked: an operator account or the name of the admin key (e.g. `cli:alice`)."""


def _distinct(identifiers: tuple[Identifier, ...]) -> tuple[Identifier, ...]:
    # checked after the items, so one bad identifier is not also reported as "none given"
    if not identifiers:
        raise PydanticCustomError("no_identifier", "name at least one identifier")
    return tuple(dict.fromkeys(identifiers))


Identifiers = Annotated[
    tuple[Identifier, ...],
    Field(max_length=MAX_ERASURE_IDENTIFIERS, json_schema_extra={"minItems": 1}),
    AfterValidator(_distinct),
]
"""The person's identifiers, each once (email and phone as keyed hashes)."""


class ErasureInput(BaseModel):
    """What an operator sends to ask for an erasure (collector body, CLI options)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    identifiers: Identifiers = Field(
        description="The person's identifiers; clear 'email' / 'phone' are hashed at the edge."
    )
    suppress_future: StrictBool = Field(
        default=False, description="Also drop future touchpoints carrying these identifiers."
    )
    request_id: RequestId | None = Field(
        default=None,
        description="Reuse one id when retrying a request; omitted: the edge assigns one.",
    )


class ErasureRequest(BaseModel):
    """An erasure request as it travels on privacy.requests (keyed by request_id)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    record_type: Literal["erasure_request"] = "erasure_request"
    schema_version: Annotated[StrictInt, Field(ge=1, le=PRIVACY_CONTRACT_VERSION)] = (
        PRIVACY_CONTRACT_VERSION
    )
    request_id: RequestId
    identifiers: Identifiers
    requested_at: Timestamp
    suppress_future: StrictBool = False
    requested_by: Actor


class StoreReceipt(BaseModel):
    """What one store confirmed: keys and rows removed, and when it was done."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    store: StoreName
    keys_removed: RemovedCount = 0
    rows_removed: RemovedCount = 0
    completed_at: Timestamp


class ErasureReceipt(BaseModel):
    """Proof that a request reached every store: counts and times only, no personal data."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    record_type: Literal["erasure_receipt"] = "erasure_receipt"
    schema_version: Annotated[StrictInt, Field(ge=1, le=PRIVACY_CONTRACT_VERSION)] = (
        PRIVACY_CONTRACT_VERSION
    )
    request_id: RequestId
    stores: tuple[StoreReceipt, ...] = Field(min_length=1)
    customer_ids_count: RemovedCount = Field(
        description="Customer ids erased: the customer and every alias merged into it."
    )
    started_at: Timestamp
    completed_at: Timestamp

    @model_validator(mode="after")
    def _consistent(self) -> ErasureReceipt:
        names = [store.store for store in self.stores]
        if len(set(names)) != len(names):
            raise PydanticCustomError(
                "invalid_value", "each store is listed once", {"field": "stores"}
            )
        if self.completed_at < self.started_at:
            raise PydanticCustomError(
                "invalid_value", "completed_at is before started_at", {"field": "completed_at"}
            )
        for store in self.stores:
            if not self.started_at <= store.completed_at <= self.completed_at:
                raise PydanticCustomError(
                    "invalid_value",
                    "a store completed outside the receipt's started_at .. completed_at",
                    {"field": "stores"},
                )
        return self


# ------------------------------------------------------------------ the edge


def _invalid(errors: list[FieldError]) -> InvalidErasureRequest:
    for error in errors:
        if error["reason"] == "unknown_field":  # the shared message speaks of touchpoints
            error["msg"] = "unknown field"
    return InvalidErasureRequest(primary_reason(errors), errors)


def _error(loc: str, msg: str, reason: str = "invalid_value") -> InvalidErasureRequest:
    return InvalidErasureRequest(reason, [{"loc": loc, "msg": msg, "reason": reason}])


def erasure_input(data: object, hasher: PiiHasher) -> ErasureInput:
    """Validate an operator's request at the edge (clear email/phone hashed with `hasher`)."""
    if not isinstance(data, Mapping):
        raise _error("", "the request is not a JSON object", "not_object")
    try:
        return ErasureInput.model_validate(data, context={PII_CONTEXT_KEY: hasher})
    except ValidationError as exc:
        raise _invalid(field_errors(exc)) from None  # never chain: its text holds the input


def parse_identifier_option(option: str, index: int) -> dict[str, str]:
    """`{"kind", "value"}` of a command-line `TYPE:VALUE` (the value may contain ':')."""
    kind, sep, value = option.partition(":")
    if not sep or not kind.strip() or not value.strip():
        raise _error(f"identifiers.{index}", "expected TYPE:VALUE, e.g. email:jane@example.com")
    return {"kind": kind.strip(), "value": value.strip()}


def build_request(
    erasure: ErasureInput, *, request_id: str, requested_at: datetime, requested_by: str
) -> ErasureRequest:
    """The request to publish; `request_id` is used when the input carries none."""
    try:
        return ErasureRequest(
            request_id=erasure.request_id or request_id,
            identifiers=erasure.identifiers,
            requested_at=requested_at,
            suppress_future=erasure.suppress_future,
            requested_by=requested_by,
        )
    except ValidationError as exc:
        raise _invalid(field_errors(exc)) from None


def identifier_keys(request: ErasureRequest) -> list[str]:
    """The request's identifiers as `kind:value` keys (the identity table's keys)."""
    return [identifier_key(identifier).decode() for identifier in request.identifiers]


# ------------------------------------------------------------------ on the topics


def _encode(model: BaseModel) -> bytes:
    return orjson.dumps(model.model_dump(mode="json"))


def request_record(request: ErasureRequest) -> Record:
    """(topic, key, value) of a request on privacy.requests, keyed by request id."""
    return Record(PRIVACY_REQUESTS_TOPIC, request.request_id.encode(), _encode(request))


def receipt_record(receipt: ErasureReceipt) -> Record:
    """(topic, key, value) of a receipt on privacy.receipts, keyed by request id."""
    return Record(PRIVACY_RECEIPTS_TOPIC, receipt.request_id.encode(), _encode(receipt))


def _decode(raw: bytes, model: type[BaseModel], record_type: str) -> Any:
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise _error("", "the message is not JSON", "not_json") from None
    if not isinstance(data, dict):
        raise _error("", "the message is not a JSON object", "not_object")
    version = data.get("schema_version")
    if isinstance(version, int) and version > PRIVACY_CONTRACT_VERSION:
        raise _error(
            "schema_version",
            f"version {version} is newer than the supported {PRIVACY_CONTRACT_VERSION}",
            "schema_version",
        )
    if data.get("record_type") != record_type:
        raise _error("record_type", f"expected record_type {record_type!r}", "unknown_type")
    try:
        return model.model_validate(data)  # no PII context: clear email/phone are refused
    except ValidationError as exc:
        raise _invalid(field_errors(exc)) from None


def decode_request(raw: bytes) -> ErasureRequest:
    """The request of a privacy.requests message; InvalidErasureRequest names field and reason."""
    request: ErasureRequest = _decode(raw, ErasureRequest, "erasure_request")
    return request


def decode_receipt(raw: bytes) -> ErasureReceipt:
    """The receipt of a privacy.receipts message; InvalidErasureRequest names field and reason."""
    receipt: ErasureReceipt = _decode(raw, ErasureReceipt, "erasure_receipt")
    return receipt
