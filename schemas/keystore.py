"""Where the PII hash key comes from: settings, or a key generated once per local data dir."""

from __future__ import annotations

import os
import secrets
import stat
import tempfile
from pathlib import Path
from typing import Final

from omnijourney.exceptions import ConfigurationError
from omnijourney.settings import Settings
from schemas.pii import MIN_KEY_BYTES, PiiHasher

KEY_PATH: Final = ("secrets", "pii_hash_key")
"""Location of the generated key below the data dir."""


def pii_key(settings: Settings) -> bytes:
    """The HMAC key for email/phone hashes (configured, or the local data dir's own)."""
    configured = settings.privacy.pii_hash_key.get_secret_value()
    if configured:
        key = configured.encode()
        if len(key) < MIN_KEY_BYTES:
            raise ConfigurationError(
                f"OMNIJOURNEY_PRIVACY__PII_HASH_KEY must be at least {MIN_KEY_BYTES} bytes"
            )
        return key
    if settings.kafka.bootstrap_servers:
        # Several hosts would each generate their own key and hash one email differently,
        # silently splitting customers: an external cluster needs one configured key.
        raise ConfigurationError(
            "set OMNIJOURNEY_PRIVACY__PII_HASH_KEY: with an external Kafka cluster every "
            "collector and worker must hash with the same key"
        )
    path = settings.path(*KEY_PATH)
    if not path.exists():
        _create_key(path)
    return _read_key(path)


def hasher_from_settings(settings: Settings) -> PiiHasher:
    """The edge's PiiHasher as the settings configure it."""
    return PiiHasher(pii_key(settings), settings.privacy.default_phone_region)


def _create_key(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".pii_hash_key.")  # mode 0600
    try:
        os.write(fd, secrets.token_hex(32).encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(tmp, path)  # atomic and refuses to overwrite: a concurrent process may win
    except FileExistsError:
        pass
    finally:
        os.unlink(tmp)


def _read_key(path: Path) -> bytes:
    if stat.S_IMODE(path.stat().st_mode) & 0o077:
        raise ConfigurationError(f"{path} is accessible by other users; run chmod 600 on it")
    key = path.read_bytes().strip()
    if len(key) < MIN_KEY_BYTES:
        raise ConfigurationError(f"{path} holds no usable key; delete it to generate a new one")
    return key
