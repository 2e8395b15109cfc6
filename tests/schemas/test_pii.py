"""PII at the edge: normalization, keyed hashes, scrubbing; no clear email or phone survives."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from omnijourney.exceptions import ConfigurationError, InvalidPii
from omnijourney.settings import load_settings
from schemas.keystore import KEY_PATH, hasher_from_settings, pii_key
from schemas.pii import (
    EMAIL_MARK,
    PHONE_MARK,
    PiiHasher,
    keyed_hash,
    normalize_email,
    normalize_phone,
    scrub_text,
)
from schemas.touchpoint import encode_input, encode_touchpoint
from tests.schemas.support import HASHER, KEY, example, parse


def _usable(email: str) -> bool:
    try:
        normalize_email(email)
    except InvalidPii:
        return False  # hypothesis found one of the placeholder addresses we refuse
    return True


LOCALS = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789._+-", min_size=3, max_size=20)
DOMAINS = st.sampled_from(["mail", "shop", "eu"])
EMAILS = st.builds(lambda local, sub: f"{local}@{sub}.example.com", LOCALS, DOMAINS).filter(_usable)
# 555-0100..0199 are reserved for fiction in the NANP
PHONES = st.integers(min_value=100, max_value=199).map(lambda n: f"+1 202-555-0{n}")


def test_email_normalization_trims_and_lowercases() -> None:
    assert normalize_email("  Jane.Roe@Example.COM \n") == "jane.roe@example.com"


@given(EMAILS, st.sampled_from(["", " ", "\t", "  \n"]), st.booleans())
def test_same_email_in_any_case_and_whitespace_gives_one_hash(
    email: str, pad: str, upper: bool
) -> None:
    variant = pad + (email.upper() if upper else email.title()) + pad
    assert HASHER.email_hash(variant) == HASHER.email_hash(email)


def test_hash_is_the_published_recipe() -> None:
    assert HASHER.email_hash("Jane.Roe@example.com") == keyed_hash(KEY, "jane.roe@example.com")
    assert HASHER.phone_hash("(202) 555-0143") == keyed_hash(KEY, "+12025550143")


def test_hash_depends_on_the_key() -> None:
    other = PiiHasher(b"another-key-of-at-least-32-bytes!!", "US")
    assert other.email_hash("jane.roe@example.com") != HASHER.email_hash("jane.roe@example.com")


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "jane.roe",
        "@example.com",
        "jane@",
        "jane@localhost",
        "jane@example",
        "jane..roe@example.com",
        ".jane@example.com",
        "jane roe@example.com",
        "jane@exa mple.com",
        "jane@-example.com",
        "jane@example.123",
        "noemail@example.com",
        "null@example.com",
        "xxx@example.com",
        "jane@noemail.com",
        "jane@example.invalid",
        "a" * 65 + "@example.com",
    ],
)
def test_malformed_or_placeholder_emails_are_refused(bad: str) -> None:
    with pytest.raises(InvalidPii) as caught:
        normalize_email(bad)
    if len(bad) > 3:
        assert bad not in str(caught.value)


@pytest.mark.parametrize(
    ("raw", "region", "e164"),
    [
        ("+1 202-555-0143", "US", "+12025550143"),
        ("(202) 555-0143", "US", "+12025550143"),
        ("202.555.0143", "US", "+12025550143"),
        ("1-202-555-0143", "US", "+12025550143"),
        ("001 202 555 0143", "GB", "+12025550143"),
        ("020 7946 0958", "GB", "+442079460958"),
        ("+44 (0)20 7946 0958", "US", "+442079460958"),
        ("0044 20 7946 0958", "DE", "+442079460958"),
        ("+33 1 99 00 12 34", "US", "+33199001234"),
        ("01 99 00 12 34", "FR", "+33199001234"),
        ("+1 202 555 0143 ext. 12", "US", "+12025550143"),
    ],
)
def test_phone_numbers_normalize_to_e164(raw: str, region: str, e164: str) -> None:
    assert normalize_phone(raw, region) == e164


def test_national_number_depends_on_the_default_region() -> None:
    uk = PiiHasher(KEY, "GB")
    assert uk.phone_hash("020 7946 0958") == HASHER.phone_hash("+44 20 7946 0958")
    with pytest.raises(InvalidPii):
        HASHER.phone_hash("020 7946 0958")  # not a US number


@pytest.mark.parametrize(
    "bad", ["", "0", "12", "555-12", "phone", "+1 555 555 5555", "000-000-0000", "+1" + "9" * 30]
)
def test_malformed_or_placeholder_phones_are_refused(bad: str) -> None:
    with pytest.raises(InvalidPii):
        normalize_phone(bad, "US")


@settings(max_examples=60)
@given(email=EMAILS, phone=PHONES)
def test_hashed_output_holds_no_clear_email_or_phone(email: str, phone: str) -> None:
    event = example("crm", "customer_update")
    event["identities"] = [
        {"kind": "customer_id", "value": "CUST-9"},
        {"kind": "email", "value": email},
        {"kind": "phone", "value": phone},
    ]
    event["properties"]["custom"] = {"note": f"contact {email} or {phone}"}
    touchpoint = parse(event)
    digits = "".join(c for c in phone if c.isdigit())
    for encoded in (encode_touchpoint(touchpoint), encode_input(touchpoint)):
        text = encoded.decode().lower()
        assert email.lower() not in text
        assert email.split("@", maxsplit=1)[0].lower() + "@" not in text
        assert phone.lower() not in text
        assert digits[1:] not in text  # the national number, whatever the formatting
    kinds = [i.kind for i in touchpoint.identities]
    assert kinds == ["customer_id", "email_hash", "phone_hash"]
    assert touchpoint.identities[1].value == HASHER.email_hash(email)


@pytest.mark.parametrize(
    ("text", "region", "expected"),
    [
        ("shoes for jane.roe@example.com", "US", f"shoes for {EMAIL_MARK}"),
        ("/account?email=jane.roe%40example.com&x=1", "US", f"/account?email={EMAIL_MARK}&x=1"),
        ("call me at 202-555-0143 please", "US", f"call me at {PHONE_MARK} please"),
        ("/track?phone=2025550143", "US", f"/track?phone={PHONE_MARK}"),
        ("tel:+44 20 7946 0958", None, f"tel:{PHONE_MARK}"),
        ("order W-2024-42 of 3 items", "US", "order W-2024-42 of 3 items"),
        ("ean 4006381333931", "US", "ean 4006381333931"),
        ("/p/1234567890", "US", "/p/1234567890"),
        ("trail shoes size 42", "US", "trail shoes size 42"),
    ],
)
def test_scrub_text(text: str, region: str | None, expected: str) -> None:
    assert scrub_text(text, region) == expected


def test_free_text_properties_are_scrubbed_at_the_edge() -> None:
    event = example("web", "search")
    event["properties"]["query"] = "order for jane.roe@example.com 202-555-0143"
    event["properties"]["url"] = "https://shop.example.com/s?q=jane.roe%40example.com"
    touchpoint = parse(event)
    assert touchpoint.properties.query == f"order for {EMAIL_MARK} {PHONE_MARK}"
    assert touchpoint.properties.url == f"https://shop.example.com/s?q={EMAIL_MARK}"


def test_ids_are_not_scrubbed_as_phone_numbers() -> None:
    event = example("web", "purchase")
    event["properties"]["order_id"] = "2025550143"  # looks like a US number, is an order id
    assert parse(event).properties.order_id == "2025550143"


def test_ids_holding_an_email_are_refused_not_scrubbed() -> None:
    event = example("pos", "purchase")
    event["properties"]["receipt_id"] = "jane.roe@example.com"
    with pytest.raises(Exception) as caught:
        parse(event)
    assert "jane.roe" not in str(caught.value)


def test_hasher_repr_hides_the_key() -> None:
    assert KEY.decode() not in repr(HASHER)
    assert "secret" in repr(HASHER)


def test_short_keys_are_refused() -> None:
    with pytest.raises(ConfigurationError):
        PiiHasher(b"short", "US")


def test_generated_local_key_is_private_and_stable(tmp_path: Path) -> None:
    settings_ = load_settings(data_dir=tmp_path)
    first = pii_key(settings_)
    path = tmp_path.joinpath(*KEY_PATH)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(first) >= 32
    assert pii_key(settings_) == first
    assert hasher_from_settings(settings_).email_hash("a.b@example.com") == keyed_hash(
        first, "a.b@example.com"
    )
    assert not [p for p in path.parent.iterdir() if p.name != path.name]  # no temp files left


def test_generated_key_differs_per_data_dir(tmp_path: Path) -> None:
    one = pii_key(load_settings(data_dir=tmp_path / "one"))
    two = pii_key(load_settings(data_dir=tmp_path / "two"))
    assert one != two


def test_world_readable_key_file_is_refused(tmp_path: Path) -> None:
    settings_ = load_settings(data_dir=tmp_path)
    pii_key(settings_)
    os.chmod(tmp_path.joinpath(*KEY_PATH), 0o644)
    with pytest.raises(ConfigurationError, match="chmod 600"):
        pii_key(settings_)


def test_configured_key_is_used_and_must_be_long_enough(tmp_path: Path) -> None:
    configured = "k" * 40
    settings_ = load_settings(data_dir=tmp_path, privacy={"pii_hash_key": configured})
    assert pii_key(settings_) == configured.encode()
    assert not tmp_path.joinpath(*KEY_PATH).exists()
    with pytest.raises(ConfigurationError):
        pii_key(load_settings(data_dir=tmp_path, privacy={"pii_hash_key": "too-short"}))


def test_external_cluster_requires_a_configured_key(tmp_path: Path) -> None:
    settings_ = load_settings(data_dir=tmp_path, kafka={"bootstrap_servers": "kafka-1:9092"})
    with pytest.raises(ConfigurationError, match="PII_HASH_KEY"):
        pii_key(settings_)


def test_key_and_region_come_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OMNIJOURNEY_PRIVACY__PII_HASH_KEY", "e" * 48)
    monkeypatch.setenv("OMNIJOURNEY_PRIVACY__DEFAULT_PHONE_REGION", "gb")
    hasher = hasher_from_settings(load_settings(data_dir=tmp_path))
    assert hasher.default_region == "GB"
    assert hasher.phone_hash("020 7946 0958") == keyed_hash(b"e" * 48, "+442079460958")
    assert "e" * 48 not in repr(load_settings())


def test_unknown_phone_region_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="default_phone_region"):
        load_settings(privacy={"default_phone_region": "XX"})


def test_examples_hash_their_clear_identifiers() -> None:
    touchpoint = parse(example("callcenter", "call_ended"))
    raw = orjson.dumps(example("callcenter", "call_ended"))
    assert b"555" in raw
    assert b"555" not in encode_touchpoint(touchpoint)
