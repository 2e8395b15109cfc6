"""Property-based fuzzing: any input gives a Touchpoint or one InvalidTouchpoint, never a crash.

Every refused input classifies into a dead letter with a reason; clear emails planted
anywhere never come out in clear.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from omnijourney.exceptions import InvalidTouchpoint
from schemas.deadletter import DeadLetter, encode_dead_letter, triage
from schemas.examples import examples
from schemas.touchpoint import encode_touchpoint
from schemas.validation import REASONS, classify, decode_touchpoint, parse_touchpoint
from tests.schemas.support import HASHER, RECEIVED

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

TEXT = st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=30)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | TEXT
)
JSON = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(TEXT, children, max_size=5),
    max_leaves=25,
)
ENVELOPE_KEYS = st.sampled_from(
    [
        "event_id", "schema_version", "channel", "type", "occurred_at", "sent_at",
        "received_at", "identities", "consent", "properties", "kind", "value",
    ]
)  # fmt: skip
PLAUSIBLE = st.fixed_dictionaries(
    {
        "channel": st.sampled_from(["web", "app", "pos", "callcenter", "email", "sms", "crm"]),
        "type": st.sampled_from(["page_view", "purchase", "sent", "click", "call_ended", "x"]),
    },
    optional={
        "event_id": TEXT,
        "occurred_at": st.sampled_from(["2024-05-01T10:00:00Z", "2024-05-01T10:00:00", 0, -1])
        | TEXT,
        "identities": st.lists(
            st.fixed_dictionaries(
                {"kind": st.sampled_from(["anonymous_id", "email", "phone", "x"]), "value": JSON}
            ),
            max_size=3,
        )
        | JSON,
        "properties": st.dictionaries(TEXT | ENVELOPE_KEYS, JSON, max_size=5) | JSON,
        "schema_version": JSON,
    },
)
EMAILS = st.builds(
    lambda name, n: f"{name}.{n}@mail.example.com",
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=3, max_size=10),
    st.integers(min_value=10, max_value=9999),
)


def check(raw: bytes) -> DeadLetter | None:
    """The properties every input must have; the dead letter if it was refused."""
    try:
        touchpoint = parse_touchpoint(raw, received_at=RECEIVED, hasher=HASHER)
    except InvalidTouchpoint as exc:
        assert exc.reason in REASONS
        assert exc.errors, "a refusal always explains itself"
        assert all(e["reason"] in REASONS and e["msg"] for e in exc.errors)
        assert classify(exc).reason == exc.reason
    else:
        assert decode_touchpoint(encode_touchpoint(touchpoint)) == touchpoint
    result = triage(raw, received_at=RECEIVED, hasher=HASHER)
    if isinstance(result, DeadLetter):
        assert result.reason in REASONS
        DeadLetter.model_validate_json(encode_dead_letter(result))
        return result
    return None


@FUZZ
@given(st.binary(max_size=3000))
def test_arbitrary_bytes(raw: bytes) -> None:
    check(raw)


@FUZZ
@given(JSON)
def test_arbitrary_json(value: Any) -> None:
    check(orjson.dumps(value))


@FUZZ
@given(PLAUSIBLE)
def test_plausible_objects(value: dict[str, Any]) -> None:
    check(orjson.dumps(value))


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(node, dict):
        for key, child in node.items():
            out += _paths(child, (*prefix, key))
    elif isinstance(node, list):
        for index, child in enumerate(node):
            out += _paths(child, (*prefix, index))
    return out


def _replace(node: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    head, *rest = path
    if isinstance(node, dict):
        return {**node, head: _replace(node[head], tuple(rest), value)}
    copy = list(node)
    copy[head] = _replace(node[head], tuple(rest), value)
    return copy


@FUZZ
@given(st.data())
def test_mutated_valid_events(data: st.DataObject) -> None:
    event = data.draw(st.sampled_from(examples()))
    path = data.draw(st.sampled_from(_paths(event)[1:]))
    mutated = _replace(event, path, data.draw(JSON))
    dead = check(orjson.dumps(mutated))
    if dead is not None and dead.reason not in ("too_large", "not_json"):
        assert dead.errors


@FUZZ
@given(st.data(), EMAILS)
def test_planted_email_never_comes_out_in_clear(data: st.DataObject, email: str) -> None:
    event = data.draw(st.sampled_from(examples()))
    strings = [p for p in _paths(event) if p and isinstance(_get(event, p), str)]
    path = data.draw(st.sampled_from(strings))
    planted = data.draw(st.sampled_from([email, f"see {email} now", f"x={email}", email.upper()]))
    raw = orjson.dumps(_replace(event, path, planted))
    try:
        out = encode_touchpoint(parse_touchpoint(raw, received_at=RECEIVED, hasher=HASHER))
    except InvalidTouchpoint as exc:
        assert email not in str(exc).lower()
        result = triage(raw, received_at=RECEIVED, hasher=HASHER)
        assert isinstance(result, DeadLetter)
        out = encode_dead_letter(result) + result.original()
    assert email.encode() not in out.lower()


def _get(node: Any, path: tuple[Any, ...]) -> Any:
    for part in path:
        node = node[part]
    return node


@pytest.mark.parametrize(
    "raw",
    [
        b"[" * 5000 + b"]" * 5000,
        b'{"a":' * 2000 + b"1" + b"}" * 2000,
        orjson.dumps(
            {"channel": "web", "type": "page_view", "properties": {"custom": {"x": [[[[]]]]}}}
        ),
        b'{"channel": "web", "type": "page_view", "event_id": "\\ud800"}',
        b'{"channel": "web", "schema_version": 99999999999999999999999}',
        b'{"occurred_at": 1e400}',
    ],
)
def test_pathological_inputs(raw: bytes) -> None:
    assert check(raw) is not None
