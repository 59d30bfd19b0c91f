from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from bot.privacy.redact import PLACEHOLDERS, Redaction, redact

CORPUS = Path(__file__).resolve().parents[1] / "data" / "redaction_corpus.jsonl"
ROWS: list[dict[str, str]] = [
    json.loads(line) for line in CORPUS.read_text(encoding="utf-8").splitlines() if line.strip()
]


def _label(row: dict[str, str]) -> str:
    return row["text"][:48]


def test_corpus_is_big_and_covers_every_placeholder() -> None:
    positives = [row for row in ROWS if row["expected"] != row["text"]]
    negatives = [row for row in ROWS if row["expected"] == row["text"]]
    assert len(ROWS) >= 220 and len(positives) >= 120 and len(negatives) >= 80
    for placeholder in PLACEHOLDERS:
        assert sum(row["expected"].count(placeholder) for row in positives) >= 5, placeholder


@pytest.mark.parametrize("row", ROWS, ids=[_label(row) for row in ROWS])
def test_corpus_line_redacts_exactly_to_expected(row: dict[str, str]) -> None:
    assert redact(row["text"]).text == row["expected"]


@pytest.mark.parametrize("row", ROWS, ids=[_label(row) for row in ROWS])
def test_redacting_redacted_text_changes_nothing(row: dict[str, str]) -> None:
    once = redact(row["text"]).text
    again = redact(once)
    assert again.text == once and again.counts == {}


def test_luhn_decides_whether_sixteen_digits_are_a_card() -> None:
    assert redact("card 4111 1111 1111 1111 ok").text == "card [CARD] ok"
    assert redact("card 4111111111111111 ok").text == "card [CARD] ok"
    assert redact("card 4111 1111 1111 1112 ok").text == "card 4111 1111 1111 1112 ok"
    assert redact("card 1234-5678-9012-3456 ok").text == "card 1234-5678-9012-3456 ok"


def test_iban_needs_a_valid_mod97_checksum() -> None:
    assert redact("iban GB82 WEST 1234 5698 7654 32").text == "iban [IBAN]"
    assert redact("iban GB82WEST12345698765432.").text == "iban [IBAN]."
    assert redact("iban GB82WEST12345698765433").text == "iban GB82WEST12345698765433"
    # A mistyped IBAN is not an IBAN (its digits may still look like something else).
    assert "[IBAN]" not in redact("iban DE89 3704 0044 0532 0130 01").text


IPV6_FORMS = [
    "::1",
    "2001:0db8:85a3:0000:0000:8a2e:0370:7334",
    "2001:db8:85a3::8a2e:370:7334",
    "fe80::1%eth0",
    "::ffff:192.0.2.128",
]


@pytest.mark.parametrize("address", IPV6_FORMS)
def test_ipv6_forms_are_redacted(address: str) -> None:
    assert redact(f"from {address} today").text == "from [IP] today"


@pytest.mark.parametrize("text", ["at 10:30", "at 22:05:11", "16:9", "C++ std::vector", ":fire: :100:", "::"])
def test_times_and_colons_are_not_ipv6(text: str) -> None:
    assert redact(text).text == text


def test_counts_report_each_placeholder_type() -> None:
    result = redact("a@b.io and c.d@example.org, call +44 20 7946 0958 from 203.0.113.7")
    assert result.text == "[EMAIL] and [EMAIL], call [PHONE] from [IP]"
    assert result.counts == {"[EMAIL]": 2, "[PHONE]": 1, "[IP]": 1}
    assert result.changed and set(result.counts) <= set(PLACEHOLDERS)


def test_untouched_text_reports_no_counts() -> None:
    result = redact("S02E05 at 10:30 on 2026-11-22, $12.99, order 100234567")
    assert result.text == "S02E05 at 10:30 on 2026-11-22, $12.99, order 100234567"
    assert result.counts == {} and not result.changed


def test_empty_string() -> None:
    assert redact("") == Redaction("", {})


def test_result_is_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        redact("x").text = "y"  # type: ignore[misc]


def test_placeholders_are_distinct_bracketed_names() -> None:
    assert len(set(PLACEHOLDERS)) == len(PLACEHOLDERS) == 8
    assert all(p.startswith("[") and p.endswith("]") and p[1:-1].isupper() for p in PLACEHOLDERS)


def test_long_inputs_of_many_numbers_are_all_redacted() -> None:
    assert redact("07700 900123 " * 300).counts == {"[PHONE]": 300}
    mixed = redact("4111 1111 1111 1111 07700 900123 123456789012345678 " * 50)
    assert mixed.counts == {"[CARD]": 50, "[PHONE]": 50, "[MENTION]": 50}
    noise = ("1 " * 2000) + "call 07700 900123 " + ("a" * 5000) + " x@y.io"
    assert redact(noise).text == ("1 " * 2000) + "call [PHONE] " + ("a" * 5000) + " [EMAIL]"
