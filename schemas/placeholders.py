"""Placeholder values that producers send when they have no real identifier."""

from __future__ import annotations

from typing import Final

BLOCKED_VALUES: Final = frozenset(
    {
        # what JavaScript, SQL, spreadsheets and form defaults turn "no value" into
        "null", "nil", "none", "undefined", "nan", "false", "true", "[object object]",
        "(null)", "<null>", "(not set)", "not set", "notset", "unset", "n/a", "na",
        "empty", "blank", "missing", "invalid", "error", "default", "-1",
        # people and SDKs standing in for someone unknown
        "anonymous", "anon", "unknown", "guest", "visitor", "user", "customer", "id",
        "userid", "user_id", "noid", "no_id",
        # test data
        "test", "testing", "tester", "dummy", "placeholder", "sample", "example", "temp",
        "tmp", "tbd", "todo", "foo", "bar", "foobar", "abc", "abc123", "asdf", "qwerty",
        "123", "1234", "12345", "123456", "1234567", "12345678", "123456789", "1234567890",
        # digests of the empty string (a producer hashed a missing value) and a famous
        # constant Android id shared by millions of devices
        "d41d8cd98f00b204e9800998ecf8427e",
        "da39a3ee5e6b4b0d3255bfef95601890afd80709",
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "9774d56d682e549c",
    }
)  # fmt: skip

_SEPARATORS: Final = str.maketrans("", "", " \t-_.:/\\|,;{}()[]<>'\"`")


def placeholder_reason(value: str) -> str | None:
    """Why `value` is a placeholder rather than an identifier, or None when it is usable."""
    folded = value.strip().casefold()
    if not folded:
        return "empty value"
    compact = folded.translate(_SEPARATORS)
    if folded in BLOCKED_VALUES or compact in BLOCKED_VALUES:
        return f"{folded!r} is a placeholder, not an identifier"
    if not compact:
        return "only separators and brackets, not an identifier"
    if len(set(compact)) == 1:
        # all-zero uuids/IDFAs, "xxxx", "1111": one repeated character identifies nobody
        return "one repeated character (like an all-zero uuid) is a placeholder, not an identifier"
    return None
