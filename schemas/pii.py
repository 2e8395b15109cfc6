"""PII at the edge: normalize emails and phone numbers, keyed-hash them, scrub free text.

Pure functions: the key comes in as bytes (see `schemas.keystore` for where it lives).
Error messages never echo the value they refuse.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from typing import Final

import phonenumbers

from omnijourney.exceptions import ConfigurationError, InvalidPii
from schemas.placeholders import placeholder_reason

EMAIL_MARK: Final = "[email]"
PHONE_MARK: Final = "[phone]"
MIN_KEY_BYTES: Final = 32

# Local parts people type at a till or a form when they will not give their address.
_PLACEHOLDER_LOCALS: Final = frozenset(
    {
        "no", "noemail", "nomail", "noreply", "no-reply", "donotreply", "do-not-reply",
        "none", "null", "email", "mail", "a", "asdf", "test", "unknown", "anonymous",
        "customer", "guest", "na", "n/a", "x", "fake", "dummy", "nobody",
    }
)  # fmt: skip
_PLACEHOLDER_DOMAINS: Final = frozenset(
    {"noemail.com", "nomail.com", "none.com", "test.com", "fake.com", "localhost"}
)
_RESERVED_TLDS: Final = frozenset({"invalid", "localhost", "local"})
_LOCAL_PART: Final = re.compile(r"^[\w!#$%&'*+/=?^`{|}~.-]+$")
_EMAIL_IN_TEXT: Final = re.compile(
    r"[\w.%+'-]+(?:@|%40)[\w-]+(?:\.[\w-]+)*\.[^\W\d_]{2,}", re.IGNORECASE
)
_EMAIL_SHAPE: Final = re.compile(r"[^\s@]+@[\w-]+(?:\.[\w-]+)*\.[^\W\d_]{2,}")
# Seven digits with little in between: the cheap gate before the (slow) phone matcher.
_PHONE_HINT: Final = re.compile(r"\+?\d(?:\D{0,3}\d){6,}")


def normalize_email(raw: str) -> str:
    """Trimmed, lower-case email address; InvalidPii when it does not have an email's shape."""
    email = raw.strip().lower()
    if len(email) > 254:
        raise InvalidPii("email address longer than 254 characters")
    local, at, domain = email.rpartition("@")
    if not at or not local or not domain:
        raise InvalidPii("not an email address (expected name@domain)")
    if (
        len(local) > 64
        or not _LOCAL_PART.match(local)
        or local.startswith(".")
        or local.endswith(".")
        or ".." in local
    ):
        raise InvalidPii("invalid email address: bad characters before the @")
    labels = domain.split(".")
    if len(labels) < 2 or not all(_domain_label_ok(label) for label in labels):
        raise InvalidPii("invalid email address: the domain needs labels like example.com")
    if labels[-1].isdigit():
        raise InvalidPii("invalid email address: the domain ends in a number")
    if (
        local in _PLACEHOLDER_LOCALS
        or domain in _PLACEHOLDER_DOMAINS
        or labels[-1] in _RESERVED_TLDS
        or (len(local) > 1 and placeholder_reason(local) is not None)
    ):
        raise InvalidPii("placeholder email address, not a person's address")
    return email


def _domain_label_ok(label: str) -> bool:
    return (
        0 < len(label) <= 63
        and not label.startswith("-")
        and not label.endswith("-")
        and label.replace("-", "").isalnum()
    )


def normalize_phone(raw: str, default_region: str) -> str:
    """E.164 form of a phone number (national forms read in `default_region`); or InvalidPii."""
    text = raw.strip()
    if placeholder_reason(text) is not None:
        raise InvalidPii("placeholder phone number")
    if len(text) > 64:
        raise InvalidPii("phone number longer than 64 characters")
    try:
        number = phonenumbers.parse(text, default_region)
    except phonenumbers.NumberParseException:
        raise InvalidPii("not a phone number") from None
    if not phonenumbers.is_valid_number(number):
        raise InvalidPii(
            f"not a valid phone number (numbers without + are read in region {default_region})"
        )
    if len(set(str(number.national_number))) == 1:
        raise InvalidPii("placeholder phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def keyed_hash(key: bytes, normalized: str) -> str:
    """Hex HMAC-SHA256 of a normalized value: the published hashing recipe."""
    return hmac.new(key, normalized.encode("utf-8"), hashlib.sha256).hexdigest()


def looks_like_email(text: str) -> bool:
    """Whether `text` contains something shaped like an email address."""
    return "@" in text and _EMAIL_SHAPE.search(text) is not None


def scrub_text(text: str, region: str | None) -> str:
    """`text` with email addresses and phone numbers replaced by markers.

    Without a region only international (+) numbers are recognised.
    """
    if "@" in text or "%40" in text:
        text = _EMAIL_IN_TEXT.sub(EMAIL_MARK, text)
    if _PHONE_HINT.search(text) is None:
        return text
    try:
        spans = [(m.start, m.end) for m in phonenumbers.PhoneNumberMatcher(text, region or "ZZ")]
    except Exception:
        # the matcher failed on odd input: redact every digit run that could be a number
        return _PHONE_HINT.sub(PHONE_MARK, text)
    for start, end in reversed(spans):
        text = text[:start] + PHONE_MARK + text[end:]
    return text


class PiiHasher:
    """Normalizes and keyed-hashes emails and phones; scrubs free text (the edge's PII policy)."""

    __slots__ = ("_key", "default_region")

    def __init__(self, key: bytes, default_region: str = "US") -> None:
        if len(key) < MIN_KEY_BYTES:
            raise ConfigurationError(f"the PII hash key must have at least {MIN_KEY_BYTES} bytes")
        if default_region not in phonenumbers.SUPPORTED_REGIONS:
            raise ConfigurationError(f"unknown phone region {default_region!r}")
        self._key = key
        self.default_region = default_region

    def __repr__(self) -> str:
        return f"PiiHasher(key=<secret>, default_region={self.default_region!r})"

    def email_hash(self, raw: str) -> str:
        """The email_hash identifier value of a clear email address."""
        return keyed_hash(self._key, normalize_email(raw))

    def phone_hash(self, raw: str) -> str:
        """The phone_hash identifier value of a clear phone number."""
        return keyed_hash(self._key, normalize_phone(raw, self.default_region))

    def scrub(self, text: str) -> str:
        """`text` without email addresses or phone numbers (national ones read in our region)."""
        return scrub_text(text, self.default_region)
