"""Deterministic ids and stable hashes: replaying the same input yields the same names."""

from __future__ import annotations

import zlib
from hashlib import blake2b


def _digest(text: str) -> str:
    return blake2b(text.encode(), digest_size=10).hexdigest()


def customer_id(identifier_key: str, created_us: int) -> str:
    """Id of the customer an identifier creates: creation millisecond, then a hash of the key.

    Fixed-width hex, so comparing ids as strings orders customers by (creation time, hash):
    the smaller id is the older customer, the survivor of a merge, decided anywhere locally.
    """
    return f"c{created_us // 1000:012x}{_digest(identifier_key)}"


def journey_id(first_event_id: str) -> str:
    """Id of a journey: the one its first touch started (not tied to a customer, so a merge
    or a replay in another order keeps it; event ids are unique, they are the dedupe key)."""
    return "j-" + first_event_id


def session_id(first_event_id: str) -> str:
    """Id of a session: the one its first touch started."""
    return "s-" + first_event_id


def partition_of(key: str, partitions: int) -> int:
    """A stable partition for a key (CRC-32; Python's hash() changes between runs)."""
    return zlib.crc32(key.encode()) % partitions
