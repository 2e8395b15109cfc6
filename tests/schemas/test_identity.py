"""Identifier rules and the choice of an event's Kafka key."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from omnijourney.exceptions import InvalidTouchpoint
from schemas.identity import (
    IDENTIFIER_PRIORITY,
    Identifier,
    identifier_key,
    strongest_identifier,
)
from schemas.placeholders import placeholder_reason
from schemas.validation import partition_key
from tests.schemas.support import HASHER, example, parse

DIGEST = "ab" * 32


def ident(kind: str, value: str) -> Identifier:
    return Identifier.model_validate({"kind": kind, "value": value})


ALL_KINDS = [
    ident("anonymous_id", "ajs-1"),
    ident("device_id", "dev-1"),
    ident("phone_hash", DIGEST),
    ident("email_hash", "cd" * 32),
    ident("loyalty_id", "LOY-1"),
    ident("customer_id", "CUST-1"),
]


def test_priority_order() -> None:
    assert IDENTIFIER_PRIORITY == (
        "customer_id",
        "loyalty_id",
        "email_hash",
        "phone_hash",
        "device_id",
        "anonymous_id",
    )


@pytest.mark.parametrize("strongest", range(len(ALL_KINDS)))
def test_strongest_identifier_follows_the_priority(strongest: int) -> None:
    present = ALL_KINDS[: strongest + 1]
    assert strongest_identifier(present).kind == IDENTIFIER_PRIORITY[len(ALL_KINDS) - 1 - strongest]


@given(st.permutations([*ALL_KINDS, ident("customer_id", "CUST-0"), ident("device_id", "dev-0")]))
def test_key_does_not_depend_on_the_producers_order(identities: list[Identifier]) -> None:
    assert strongest_identifier(identities) == ident("customer_id", "CUST-0")


def test_key_bytes() -> None:
    assert identifier_key(ident("loyalty_id", "LOY-1")) == b"loyalty_id:LOY-1"
    touchpoint = parse(example("pos", "purchase"))
    assert partition_key(touchpoint) == b"loyalty_id:LOY-4410-2231"
    crm = parse(example("crm", "customer_update"))
    assert partition_key(crm) == b"customer_id:CUST-000123"
    email_only = parse(example("email", "sent"))
    assert (
        partition_key(email_only)
        == f"email_hash:{HASHER.email_hash('jane.roe@example.com')}".encode()
    )


def test_no_identifier_to_key_by() -> None:
    with pytest.raises(InvalidTouchpoint):
        strongest_identifier([])


@pytest.mark.parametrize(
    "junk",
    [
        "", " ", "0", "-1", "null", "NULL", " Null ", "undefined", "anonymous", "none", "NaN",
        "unknown", "test", "n/a", "[object Object]", "00000000-0000-0000-0000-000000000000",
        "0000", "{}", "''", "1234567890", "xxxxxxxx", "ffffffff-ffff-ffff-ffff-ffffffffffff",
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    ],
)  # fmt: skip
def test_placeholders(junk: str) -> None:
    assert placeholder_reason(junk) is not None


@pytest.mark.parametrize(
    "usable", ["CUST-000123", "LOY-4410-2231", "ajs-7f3c", "b7e15163-2a1f-4c1e", "10", "ab"]
)
def test_usable_values(usable: str) -> None:
    assert placeholder_reason(usable) is None


def test_hash_identifiers_are_lowercased_hex() -> None:
    assert ident("email_hash", "AB" * 32).value == "ab" * 32
