"""Fictional contact data: nothing here can be a real person's address or number.

Emails live on the reserved example domains (RFC 2606). Phone numbers come from ranges set
aside for fiction: 555-0100..555-0199 in every North American area code, and the Ofcom drama
ranges of UK geographic numbers (e.g. 020 7946 0xxx).
"""

from __future__ import annotations

import functools
import random
from typing import Final

import phonenumbers

EMAIL_DOMAINS: Final = ("example.com", "example.org", "example.net")

# Ofcom's numbers for drama: (country-less national prefix, first, last) of 1000-number blocks.
_UK_DRAMA: Final = (
    "2079460",  # 020 7946 0000..0999 London
    "1134960",  # 0113 496 0xxx Leeds
    "1144960",  # Sheffield
    "1164960",  # Leicester
    "1174960",  # Bristol
    "1184960",  # Reading
    "1214960",  # Birmingham
    "1314960",  # Edinburgh
    "1414960",  # Glasgow
    "1514960",  # Liverpool
    "1614960",  # Manchester
    "1914980",  # Tyneside
    "2920180",  # Cardiff
)


@functools.cache
def _nanp_area_codes() -> tuple[int, ...]:
    """Area codes in which libphonenumber accepts 555-01xx as a valid number."""
    return tuple(
        code
        for code in range(201, 990)
        if phonenumbers.is_valid_number(phonenumbers.parse(f"+1{code}5550150", None))
    )


@functools.cache
def phone_pool_size() -> int:
    """How many distinct fictional numbers there are to hand out."""
    return len(_nanp_area_codes()) * 100 + len(_UK_DRAMA) * 1000


def phone_pool(rng: random.Random, count: int) -> list[str]:
    """`count` distinct fictional numbers in E.164 (fewer when the pool runs out), shuffled."""
    codes = _nanp_area_codes()
    size = phone_pool_size()
    picks = rng.sample(range(size), min(count, size))
    nanp = len(codes) * 100
    out = []
    for pick in picks:
        if pick < nanp:
            code, line = divmod(pick, 100)
            out.append(f"+1{codes[code]}55501{line:02d}")
        else:
            block, line = divmod(pick - nanp, 1000)
            prefix = _UK_DRAMA[block]
            out.append(f"+44{prefix[:-1]}{int(prefix[-1]) * 1000 + line:04d}")
    return out


def phone_spelling(e164: str, rng: random.Random, national_ok: bool) -> str:
    """One of the ways a system writes the number (all normalize to the same E.164)."""
    roll = rng.random()
    if e164.startswith("+1"):
        area, exchange, line = e164[2:5], e164[5:8], e164[8:]
        if roll < 0.4:
            return e164
        if roll < 0.75 or not national_ok:
            return f"+1 {area}-{exchange}-{line}"
        return f"({area}) {exchange}-{line}"
    if roll < 0.5:
        return e164
    national = e164[3:]
    if national.startswith("20"):
        return f"+44 {national[:2]} {national[2:6]} {national[6:]}"
    return f"+44 {national[:4]} {national[4:7]} {national[7:]}"


def email_address(index: int) -> str:
    """The address of person `index` (lower case; unique per index)."""
    return f"shopper.{index:07d}@{EMAIL_DOMAINS[index % len(EMAIL_DOMAINS)]}"


def email_spelling(address: str, rng: random.Random) -> str:
    """How a system may write the address (case, stray spaces); same normalized form."""
    roll = rng.random()
    if roll < 0.8:
        return address
    local, _, domain = address.partition("@")
    if roll < 0.9:
        return f"{local.capitalize()}@{domain.capitalize()}"
    return f" {address.upper()} "
