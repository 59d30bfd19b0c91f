"""Issue 12: every input it quotes, by kind, plus the kinds they stand for; and the model
sees the minimized text the store keeps."""

from __future__ import annotations

import pytest

from bot.config import ConfigError, load_config
from bot.core import Bot
from bot.messages import Incoming
from bot.privacy.redact import configure, redact
from bot.privacy.redaction import secret_rules
from bot.privacy.redaction.phones import DEFAULT_REGIONS
from bot.testing.fake_engine import FakeEngine


@pytest.mark.parametrize(
    "text, expected",
    [
        ("call me on 612 34 56 78 tonight", "call me on [PHONE] tonight"),  # ES mobile, national
        ("32 12 34 56", "[PHONE]"),  # DK, national
        ("ring 020 7946 0018 please", "ring [PHONE] please"),  # GB, national
        ("345-899-3560x4587", "[PHONE]"),  # extension glued on
        ("+44 2034567890x456", "[PHONE]"),
        ("(800) 901-3355 ext 7246433 thanks", "[PHONE] thanks"),  # spaced extension
        ("Office,+447700 208 815", "Office,[PHONE]"),  # right after a comma
        ("contact/+447700 208 815", "contact/[PHONE]"),  # right after a slash
        ("mobile:020 7946 0018", "mobile:[PHONE]"),
    ],
)
def test_phones_as_people_write_them(text: str, expected: str) -> None:
    assert redact(text).text == expected


@pytest.mark.parametrize(
    "text, expected",
    [
        ("ES 58 0049 0290 3424 1352 8341", "[IBAN]"),  # a space after the country code
        ("iban ES15-0049-1806-9121-1186-9374 ok", "iban [IBAN] ok"),  # dashes
        ("ES15.0049.1806.9121.1186.9374", "[IBAN]"),  # dots
        ("es91 2100 0418 4502 0005 1332", "[IBAN]"),  # lower case
        ("HN88 CABF 0000 0000 0002 5000 5469", "[IBAN]"),
    ],
)
def test_ibans_with_any_separator(text: str, expected: str) -> None:
    assert redact(text).text == expected


def test_an_iban_with_wrong_check_digits_is_no_iban() -> None:
    assert "[IBAN]" not in redact("ES 58 0049 0290 3424 1352 8342").text


@pytest.mark.parametrize(
    "text, expected",
    [
        ("maestro 630427373398", "maestro [CARD]"),  # 12-digit Maestro
        ("card 6759 6498 2643 8453 declined", "card [CARD] declined"),
        ("ISBN 978-3-16-148410-0", "ISBN 978-3-16-148410-0"),
        ("the book 9780306406157 is great", "the book 9780306406157 is great"),  # ISBN-13, Luhn-valid
        ("ISBN-10 0-306-40615-2", "ISBN-10 0-306-40615-2"),
        ("IMEI 490154203237518", "IMEI 490154203237518"),  # Luhn-valid device id
        ("receipt 123456789012 attached", "receipt 123456789012 attached"),  # 12 digits, not Maestro
    ],
)
def test_cards_and_check_digit_identifiers(text: str, expected: str) -> None:
    assert redact(text).text == expected


@pytest.mark.parametrize(
    "address",
    [
        "jeff@臺網中心.tw", "info@xn--d1acufc.xn--p1ai", "fred~smith@example.com", "first/last@example.org",
        "a=b@example.com", "δοκιμή@παράδειγμα.δοκιμή", "संपर्क@डाटामेल.भारत", "Pelé@example.com",
    ],
)  # fmt: skip
def test_rfc_6531_addresses_are_replaced_whole(address: str) -> None:
    assert redact(f"mail {address}, thanks").text == "mail [EMAIL], thanks"


@pytest.mark.parametrize(
    "token",
    [
        "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",
        "hvs.CAESIJlU9JMYEhOPYv4igdhm9PnZDrabYTobQ4Ymnlq1qY-LGh4KHGh2cy5oeXZzb3FDMzJ0R2JTdTFzd1RKS0pYbw",
        "ya29.a0AfH6SMBxQwz4lTpKp0Jk3fYVh6k3nlQ9mE7rX2fJdEc1lVQk",
        "dp.st.dev.zHwfLJ5e3fSVOqwtEfbiHwTQDqCkrJg4D0mQ0Ah0DzKd",
        "sk.eyJ1IjoiZXhhbXBsZSIsImEiOiJjbGV4YW1wbGUifQ.AbCdEfGhIjKlMnOpQrStUv",
        "110201543:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw",  # Telegram: not [PHONE]:[SECRET]
        "ghp_0123456789abcdefghijABCDEFGHIJ012345", "xoxb-1234567890-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx",
        "AKIAIOSFODNN7EXAMPLE", "sk_live_4eC39HqLyjWDarjtT1zdp7dc",
    ],
)
def test_provider_tokens_are_replaced_whole(token: str) -> None:
    result = redact(f"my token {token} oops")
    assert result.text == "my token [SECRET] oops" and result.counts == {"[SECRET]": 1}


def test_every_secret_rule_is_documented() -> None:
    assert all(description and pattern for description, pattern in secret_rules.RULES)
    assert len(secret_rules.RULES) >= 20


@pytest.mark.parametrize(
    "text",
    [
        "https://docs.example.com/guide/setup#how-to-reset-your-password-on-the-mobile-app",
        "https://twitter.com/starfallshow/status/1798234567890123456",
        "https://forum.example.org/t/finale-theories/123456789012",
        "https://en.wikipedia.org/wiki/Starfall#Season_3_(2026)_and_the_cancelled_spinoff",
    ],
)
def test_readable_urls_stay(text: str) -> None:
    assert redact(text).text == text


@pytest.mark.parametrize(
    "text",
    [
        "https://example.com/account?user=jane", "https://jane:pw@example.com/files",
        "https://example.com/reset#access_token=abc123", "https://docs.google.com/document/d/1BxiMVs0XRA5nFMdKvBdBZjgmUUqptlbs74OgvE2upms/edit",
        "https://example.com/invite/7f9c2ba4-e88f-827d-6160-45507605853e",
    ],
)  # fmt: skip
def test_urls_carrying_something_personal_go(text: str) -> None:
    assert redact(text).text == "[URL]"


@pytest.mark.parametrize(
    "text",
    ["1 000 000 members soon", "during 2019 2020 2021", "version 13.20.177 build 87780", "pedido nº 4500123456 no llegó",
     "commande n° 123456789 pas reçue", "S02E05 at 10:30 on 2026-11-22, $12.99"],
)  # fmt: skip
def test_numbers_that_are_not_phones_stay(text: str) -> None:
    assert redact(text).text == text


def test_phone_regions_decide_national_formats() -> None:
    try:
        configure(("US",))
        assert redact("it is 612 34 56 78").text == "it is 612 34 56 78"  # Spanish, not configured
        assert redact("it is +34 612 34 56 78").text == "it is [PHONE]"  # international: always
    finally:
        configure(DEFAULT_REGIONS)
    assert redact("it is 612 34 56 78").text == "it is [PHONE]"


def test_phone_regions_config_key(tmp_path) -> None:  # type: ignore[no-untyped-def]
    assert load_config(None, environ={}).privacy.phone_regions == DEFAULT_REGIONS
    path = tmp_path / "bot.toml"
    path.write_text('[privacy]\nphone_regions = ["ES", "GB"]\n')
    assert load_config(path, environ={}).privacy.phone_regions == ("ES", "GB")
    path.write_text('[privacy]\nphone_regions = ["ES", "XX"]\n')
    with pytest.raises(ConfigError, match=r"privacy.phone_regions: .*unknown: XX"):
        load_config(path, environ={})


async def test_the_model_sees_the_minimized_text(bot: Bot, engine: FakeEngine) -> None:
    await bot.handle(Incoming("discord", "U1", "D1", "my card 4111 1111 1111 1111 and jane@example.com"))
    assert engine.seen[-1][1] == "my card [CARD] and [EMAIL]"


def test_qa_found_formats() -> None:
    """Found by an independent QA pass: slash-separated IBANs and an extension after a semicolon."""
    from bot.privacy.redact import redact

    assert redact("IBAN ES91/2100/0418/4502/0005/1332 please").text == "IBAN [IBAN] please"
    assert redact("call +61 2 9876 5432;x77 today").text == "call [PHONE] today"
    assert redact("see docs/2021/05 and 12/05/2024").text == "see docs/2021/05 and 12/05/2024"
