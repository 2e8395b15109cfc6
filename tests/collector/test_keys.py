"""Write keys: parsing, lookup, settings from the environment, refusal without keys."""

from __future__ import annotations

import pytest

from omnijourney.collector.keys import Keyring, bearer_token, keyring_from_settings
from omnijourney.exceptions import ConfigurationError
from omnijourney.settings import CollectorSettings, load_settings

WEB = "web-shop-secret-0123456789"
POS = "till-017-03-secret-0123456789"


def _keyring() -> Keyring:
    return Keyring({"web-shop": (WEB, frozenset({"web"})), "till": (POS, frozenset({"pos"}))})


@pytest.mark.parametrize(
    ("header", "token"),
    [
        (f"Bearer {WEB}", WEB),
        (f"bearer   {WEB}  ", WEB),
        (None, None),
        ("", None),
        ("Bearer", None),
        ("Bearer ", None),
        (f"Basic {WEB}", None),
        ("Bearer " + "x" * 600, None),
    ],
)
def test_bearer_token(header: str | None, token: str | None) -> None:
    assert bearer_token(header) == token


def test_grant_names_the_key_and_its_channels() -> None:
    keyring = _keyring()
    grant = keyring.grant(POS)
    assert grant is not None
    assert (grant.name, grant.channels) == ("till", frozenset({"pos"}))
    assert keyring.grant(WEB[:-1]) is None
    assert keyring.grant(WEB + "x") is None
    assert keyring.grant("") is None


def test_keyring_never_shows_secrets() -> None:
    keyring = _keyring()
    assert WEB not in repr(keyring)
    assert keyring.names() == ["web-shop", "till"]


def test_write_keys_from_environment_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "OMNIJOURNEY_COLLECTOR__WRITE_KEYS",
        f'{{"web-shop": {{"secret": "{WEB}", "channels": ["web"]}}, '
        f'"till": {{"secret": "{POS}", "channels": ["pos", "pos"]}}}}',
    )
    settings = load_settings()
    assert settings.collector.write_keys["till"].channels == ("pos",)
    assert WEB not in repr(settings)
    keyring, dev_token = keyring_from_settings(settings.collector)
    assert dev_token is None
    grant = keyring.grant(WEB)
    assert grant is not None and grant.channels == frozenset({"web"})


@pytest.mark.parametrize(
    ("keys", "problem"),
    [
        ('{"a": {"secret": "short", "channels": ["web"]}}', "at least 16"),
        ('{"a": {"secret": "0123456789abcdefgh", "channels": []}}', "channels"),
        ('{"a": {"secret": "0123456789abcdefgh", "channels": ["fax"]}}', "channels"),
        (
            '{"a": {"secret": "0123456789abcdefgh", "channels": ["web"]}, '
            '"b": {"secret": "0123456789abcdefgh", "channels": ["pos"]}}',
            "share one secret",
        ),
    ],
)
def test_bad_write_keys_are_refused(
    monkeypatch: pytest.MonkeyPatch, keys: str, problem: str
) -> None:
    monkeypatch.setenv("OMNIJOURNEY_COLLECTOR__WRITE_KEYS", keys)
    with pytest.raises(ConfigurationError, match=problem):
        load_settings()


def test_no_keys_refuses_to_start_with_advice() -> None:
    with pytest.raises(ConfigurationError, match="OMNIJOURNEY_COLLECTOR__WRITE_KEYS"):
        keyring_from_settings(CollectorSettings())


def test_dev_key_is_generated_on_request_for_every_channel() -> None:
    keyring, token = keyring_from_settings(CollectorSettings(), allow_dev_key=True)
    assert token is not None and len(token) > 20
    grant = keyring.grant(token)
    assert grant is not None and "pos" in grant.channels and "web" in grant.channels
    _, other = keyring_from_settings(CollectorSettings(dev_write_key=True))
    assert other is not None and other != token


def test_dev_key_only_on_loopback() -> None:
    with pytest.raises(ConfigurationError, match="loopback"):
        keyring_from_settings(CollectorSettings(host="0.0.0.0"), allow_dev_key=True)
    with pytest.raises(ValueError, match="loopback"):
        CollectorSettings(host="10.1.2.3", dev_write_key=True)
