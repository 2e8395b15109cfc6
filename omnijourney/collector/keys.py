"""Write keys: which sender may write which channels, checked in constant time."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from omnijourney.exceptions import ConfigurationError
from omnijourney.settings import CollectorSettings, is_loopback
from schemas.channel import CHANNELS

DEV_KEY_NAME: Final = "dev"
_SCHEME: Final = "bearer"
_MAX_TOKEN_CHARS: Final = 512


@dataclass(frozen=True, slots=True)
class Grant:
    """What an authenticated sender may do: its key's name and channels."""

    name: str
    channels: frozenset[str]


@dataclass(frozen=True, slots=True)
class _Entry:
    digest: bytes
    grant: Grant


def _digest(token: str) -> bytes:
    # Comparing fixed-length digests keeps the comparison time independent of the secret's
    # length and of how many leading characters a guess got right.
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


def bearer_token(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, or None when there is none."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != _SCHEME or not token or len(token) > _MAX_TOKEN_CHARS:
        return None
    return token


class Keyring:
    """The configured write keys; `grant` finds the key of a request without early exit."""

    __slots__ = ("_entries",)

    def __init__(self, keys: Mapping[str, tuple[str, frozenset[str]]]) -> None:
        if not keys:
            raise ConfigurationError("a keyring needs at least one write key")
        self._entries = tuple(
            _Entry(_digest(secret), Grant(name, channels))
            for name, (secret, channels) in keys.items()
        )

    def __repr__(self) -> str:
        return f"Keyring(keys={[entry.grant.name for entry in self._entries]})"

    def names(self) -> list[str]:
        """The key names (never the secrets)."""
        return [entry.grant.name for entry in self._entries]

    def grant(self, token: str) -> Grant | None:
        """The grant of the key whose secret is `token`, or None."""
        presented = _digest(token)
        found: Grant | None = None
        for entry in self._entries:  # no break: every key is compared, whichever matches
            if hmac.compare_digest(presented, entry.digest):
                found = entry.grant
        return found


class AdminKey:
    """The admin endpoints' key (erasure requests), checked in constant time."""

    __slots__ = ("_digest",)

    def __init__(self, secret: str) -> None:
        if not secret:
            raise ConfigurationError("an admin key needs a secret")
        self._digest = _digest(secret)

    def __repr__(self) -> str:
        return "AdminKey(<secret>)"

    def matches(self, token: str) -> bool:
        """Whether `token` is the admin key."""
        return hmac.compare_digest(_digest(token), self._digest)


def admin_key_from_settings(collector: CollectorSettings) -> AdminKey | None:
    """The configured admin key; None when there is none (the admin endpoints refuse all)."""
    secret = collector.admin_key.get_secret_value()
    return AdminKey(secret) if secret else None


def dev_key() -> tuple[str, Keyring]:
    """A fresh random key for every channel, and a keyring holding only it."""
    token = "dev_" + secrets.token_urlsafe(24)
    return token, Keyring({DEV_KEY_NAME: (token, frozenset(CHANNELS))})


def keyring_from_settings(
    collector: CollectorSettings, *, allow_dev_key: bool = False
) -> tuple[Keyring, str | None]:
    """The keyring of the settings and, when a dev key was generated, its token (show it once).

    With no keys configured the collector must not start, unless a dev key is allowed
    explicitly (setting `dev_write_key` or the CLI flag) and the collector listens on loopback.
    """
    if collector.write_keys:
        keys = {
            name: (key.secret.get_secret_value(), frozenset(key.channels))
            for name, key in collector.write_keys.items()
        }
        return Keyring(keys), None
    if not (allow_dev_key or collector.dev_write_key):
        raise ConfigurationError(
            "no collector write keys configured: set OMNIJOURNEY_COLLECTOR__WRITE_KEYS to JSON "
            'such as {"web-shop": {"secret": "<random, 16+ chars>", "channels": ["web"]}}, '
            "or use `omnijourney collector --dev-key` for a one-off local key"
        )
    if not is_loopback(collector.host):
        raise ConfigurationError(
            f"a generated dev key is refused on {collector.host}: it is for loopback only"
        )
    token, keyring = dev_key()
    return keyring, token
