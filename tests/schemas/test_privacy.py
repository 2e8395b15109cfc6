"""Erasure requests and receipts: hashed at the edge like touchpoints, no personal data after."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from jsonschema import Draft202012Validator

from omnijourney.exceptions import InvalidErasureRequest
from schemas.export import write_json_schemas
from schemas.privacy import (
    ErasureInput,
    ErasureReceipt,
    ErasureRequest,
    StoreReceipt,
    build_request,
    decode_receipt,
    decode_request,
    erasure_input,
    identifier_keys,
    parse_identifier_option,
    receipt_record,
    request_record,
)
from schemas.topics import PRIVACY_RECEIPTS_TOPIC, PRIVACY_REQUESTS_TOPIC
from tests.schemas.support import HASHER, example, parse

AT = datetime(2026, 3, 10, 9, 0, tzinfo=UTC)
EMAIL = "Jane.Roe@Example.com "
PHONE = "(202) 555-0143"  # from the 555-01xx range reserved for fiction


def _request(**fields: Any) -> ErasureRequest:
    erasure = erasure_input(
        {
            "identifiers": [
                {"kind": "email", "value": EMAIL},
                {"kind": "phone", "value": PHONE},
                {"kind": "loyalty_id", "value": "LOY-000417"},
            ],
            **fields,
        },
        HASHER,
    )
    return build_request(erasure, request_id="er-1", requested_at=AT, requested_by="cli:dpo")


def _errors(exc: pytest.ExceptionInfo[InvalidErasureRequest]) -> dict[str, str]:
    return {error["loc"]: error["reason"] for error in exc.value.errors}


def test_clear_email_and_phone_are_hashed_exactly_as_in_touchpoints() -> None:
    request = _request()
    touch = example("web", "login")
    touch["identities"] = [{"kind": "email", "value": EMAIL}, {"kind": "phone", "value": PHONE}]
    hashed = {(i.kind, i.value) for i in parse(touch).identities}
    assert hashed <= {(i.kind, i.value) for i in request.identifiers}
    assert identifier_keys(request) == [f"{kind}:{value}" for kind, value in sorted(hashed)] + [
        "loyalty_id:LOY-000417"
    ]
    raw = request_record(request).value
    assert b"example.com" not in raw.lower() and b"5550143" not in raw


def test_already_hashed_identifiers_pass_and_duplicates_collapse() -> None:
    digest = HASHER.email_hash(EMAIL)
    erasure = erasure_input(
        {
            "identifiers": [
                {"kind": "email_hash", "value": digest.upper()},
                {"kind": "email", "value": EMAIL},
            ]
        },
        HASHER,
    )
    assert [(i.kind, i.value) for i in erasure.identifiers] == [("email_hash", digest)]


def test_the_request_travels_keyed_by_its_id_and_reads_back() -> None:
    request = _request(suppress_future=True)
    record = request_record(request)
    assert (record.topic, record.key) == (PRIVACY_REQUESTS_TOPIC, b"er-1")
    assert decode_request(record.value) == request
    assert request.suppress_future and request.requested_at == AT
    retried = _request(request_id="er-given")
    assert retried.request_id == "er-given"  # a retry keeps the id it names


LOYALTY = [{"kind": "loyalty_id", "value": "L-1"}]


@pytest.mark.parametrize(
    ("body", "field", "reason"),
    [
        ({}, "identifiers", "missing_field"),
        ({"identifiers": []}, "identifiers", "no_identifier"),
        (
            {"identifiers": [{"kind": "email", "value": "no-at-sign"}]},
            "identifiers.0.value",
            "invalid_pii",
        ),
        ({"identifiers": [{"kind": "fax", "value": "1"}]}, "identifiers.0.kind", "invalid_value"),
        (
            {"identifiers": [{"kind": "email_hash", "value": "9f3a7c2e"}]},
            "identifiers.0.value",
            "invalid_value",
        ),
        ({"identifiers": LOYALTY, "x": 1}, "x", "unknown_field"),
        ({"identifiers": LOYALTY, "request_id": "a b"}, "request_id", "invalid_value"),
        ({"identifiers": LOYALTY, "suppress_future": "yes"}, "suppress_future", "wrong_types"),
    ],
)
def test_bad_input_is_refused_naming_the_field(
    body: dict[str, Any], field: str, reason: str
) -> None:
    with pytest.raises(InvalidErasureRequest) as exc:
        erasure_input(body, HASHER)
    assert _errors(exc) == {field: reason}
    assert "no-at-sign" not in str(exc.value)  # errors never echo the input


def test_past_the_edge_clear_email_is_refused() -> None:
    data = orjson.loads(request_record(_request()).value)
    data["identifiers"][0] = {"kind": "email", "value": "jane.roe@example.com"}
    with pytest.raises(InvalidErasureRequest) as exc:
        decode_request(orjson.dumps(data))
    assert _errors(exc) == {"identifiers.0.kind": "clear_pii"}
    for raw, reason in ((b"{", "not_json"), (b"[]", "not_object")):
        with pytest.raises(InvalidErasureRequest) as exc:
            decode_request(raw)
        assert exc.value.reason == reason
    newer = {**orjson.loads(request_record(_request()).value), "schema_version": 2}
    with pytest.raises(InvalidErasureRequest, match="newer"):
        decode_request(orjson.dumps(newer))


def test_naive_times_and_email_shaped_operators_are_refused() -> None:
    erasure = ErasureInput(identifiers=({"kind": "loyalty_id", "value": "L-1"},))  # type: ignore[arg-type]
    with pytest.raises(InvalidErasureRequest) as exc:
        build_request(
            erasure,
            request_id="er-2",
            requested_at=datetime(2026, 3, 10, 9, 0),  # noqa: DTZ001 - the naive time under test
            requested_by="cli:dpo",
        )
    assert _errors(exc) == {"requested_at": "naive_timestamp"}
    with pytest.raises(InvalidErasureRequest) as exc:
        build_request(erasure, request_id="er-2", requested_at=AT, requested_by="dpo@example.com")
    assert _errors(exc) == {"requested_by": "clear_pii"}


def test_identifier_options() -> None:
    assert parse_identifier_option("customer_id:CRM:42", 0) == {
        "kind": "customer_id",
        "value": "CRM:42",
    }
    for bad in ("email", ":x", "email:"):
        with pytest.raises(InvalidErasureRequest) as exc:
            parse_identifier_option(bad, 3)
        assert _errors(exc) == {"identifiers.3": "invalid_value"}


def _receipt(**fields: Any) -> ErasureReceipt:
    done = AT + timedelta(seconds=5)
    data: dict[str, Any] = {
        "request_id": "er-1",
        "stores": [
            {"store": "kafka.identity-table", "keys_removed": 5, "completed_at": done},
            {"store": "clickhouse.touchpoints", "rows_removed": 12, "completed_at": done},
        ],
        "customer_ids_count": 3,
        "started_at": AT,
        "completed_at": done,
        **fields,
    }
    return ErasureReceipt.model_validate(data)


def test_a_receipt_reads_back_and_has_no_place_for_personal_data() -> None:
    receipt = _receipt()
    record = receipt_record(receipt)
    assert (record.topic, record.key) == (PRIVACY_RECEIPTS_TOPIC, b"er-1")
    assert decode_receipt(record.value) == receipt
    fields = set(ErasureReceipt.model_fields) | set(StoreReceipt.model_fields)
    assert fields == {
        "record_type",
        "schema_version",
        "request_id",
        "stores",
        "customer_ids_count",
        "started_at",
        "completed_at",
        "store",
        "keys_removed",
        "rows_removed",
    }
    with pytest.raises(ValueError, match="store"):
        StoreReceipt(store="jane.roe@example.com", completed_at=AT)


@pytest.mark.parametrize(
    ("fields", "loc"),
    [
        ({"completed_at": AT - timedelta(seconds=1)}, "completed_at"),
        ({"stores": []}, "stores"),
        (
            {"stores": [{"store": "clickhouse.sessions", "completed_at": AT + timedelta(hours=1)}]},
            "stores",
        ),
        (
            {
                "stores": [
                    {"store": "clickhouse.sessions", "completed_at": AT},
                    {"store": "clickhouse.sessions", "completed_at": AT},
                ]
            },
            "stores",
        ),
    ],
)
def test_inconsistent_receipts_are_refused(fields: dict[str, Any], loc: str) -> None:
    data = orjson.loads(receipt_record(_receipt()).value) | orjson.loads(orjson.dumps(fields))
    with pytest.raises(InvalidErasureRequest) as exc:
        decode_receipt(orjson.dumps(data))
    assert loc in _errors(exc)


def test_exported_schemas_accept_the_records_and_refuse_clear_pii(tmp_path: Path) -> None:
    write_json_schemas(tmp_path)

    def validator(name: str) -> Draft202012Validator:
        schema = json.loads((tmp_path / name).read_text())
        Draft202012Validator.check_schema(schema)
        return Draft202012Validator(schema)

    request = orjson.loads(request_record(_request()).value)
    assert validator("erasure-request.schema.json").is_valid(request)
    receipt = orjson.loads(receipt_record(_receipt()).value)
    assert validator("erasure-receipt.schema.json").is_valid(receipt)
    clear = {**request, "identifiers": [{"kind": "email", "value": "jane.roe@example.com"}]}
    assert not validator("erasure-request.schema.json").is_valid(clear)
    operator_input = {"identifiers": [{"kind": "email", "value": EMAIL}], "suppress_future": True}
    assert validator("erasure-request.input.schema.json").is_valid(operator_input)
    assert not validator("erasure-request.input.schema.json").is_valid({"identifiers": []})
