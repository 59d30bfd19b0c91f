"""Issue 14's model-independent parts: the one normal form, yes/no parsing and the
`[assistant] languages` key (the typo speller and the nearest-neighbour vote are tested in the
model server's environment: rasa_project/addons/tests/test_parts.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import pytest

from bot.config import ConfigError, load_config
from bot.guards import yes_or_no
from bot.normalize import normalize


@pytest.mark.parametrize(
    ("raw", "normal"),
    [
        ("who\u2019s typing?", "who's typing?"),  # the phone's curly apostrophe
        ("\u201cquoted\u201d", '"quoted"'),
        ("are you a bot\u200b?", "are you a bot?"),  # zero-width space
        ("soft\u00adhyphen", "softhyphen"),
        ("\uff21\uff22\uff23", "ABC"),  # full-width letters (NFKC)
        ("sooooo slow", "soo slow"),
        ("good soon", "good soon"),  # two letters stay
        ("why!!!!", "why!"),
        ("what???", "what?"),
        ("wait.....", "wait..."),
        ("  many   spaces\n", "many spaces"),
    ],
)
def test_normalize_gives_one_form(raw: str, normal: str) -> None:
    assert normalize(raw) == normal


def test_normalize_is_idempotent() -> None:
    text = "Wh\u2019y\u200b sooooo slow!!!  \uff21"
    assert normalize(normalize(text)) == normalize(text)


@pytest.mark.parametrize(
    ("text", "answer"),
    [
        ("yes", True), ("Yes please", True), ("yep", True), ("sure thing", True), ("ok", True),
        ("👍", True), ("👍🏽", True), ("👌👍", True), ("✅", True), ("sí", True), ("はい", True),
        ("no", False), ("nope", False), ("no thanks", False), ("not now", False), ("👎", False),
        ("❌", False), ("nein", False), ("i'm good", False),
        ("🤔", None), ("yes and no", None), ("maybe", None), ("yes when is the next episode", None),
        ("", None), ("👍👎", None),
    ],
)
def test_yes_or_no(text: str, answer: Optional[bool]) -> None:
    assert yes_or_no(text) is answer


def _config(tmp_path: Path, body: str):  # type: ignore[no-untyped-def]
    path = tmp_path / "config.toml"
    path.write_text(body)
    return load_config(path, environ={})


def test_languages_default_to_english(tmp_path: Path) -> None:
    assert tuple(_config(tmp_path, "").assistant.languages) == ("en",)


def test_languages_are_read_from_the_assistant_section(tmp_path: Path) -> None:
    assert tuple(_config(tmp_path, '[assistant]\nlanguages = ["en", "es"]\n').assistant.languages) == ("en", "es")


def test_languages_also_take_a_comma_separated_string_as_environment_variables_do(tmp_path: Path) -> None:
    assert tuple(_config(tmp_path, '[assistant]\nlanguages = "en, pt"\n').assistant.languages) == ("en", "pt")


@pytest.mark.parametrize("value", ["[]", '"english"', '["en", "e1"]', "[1]"])
def test_bad_languages_give_one_line_naming_the_key(tmp_path: Path, value: str) -> None:
    with pytest.raises(ConfigError) as raised:
        _config(tmp_path, f"[assistant]\nlanguages = {value}\n")
    assert "assistant.languages" in str(raised.value) and "\n" not in str(raised.value)


# English that a character-level detector alone took for another language (training lines).
@pytest.mark.parametrize(
    "text", ["hello everyone", "privacy question", "cancel my subscription", "do you keep logs", "my hoodie hasn't arrived", "stuttering video"]
)
def test_english_words_are_never_taken_for_another_language(text: str) -> None:
    from bot.language import detect

    assert detect(normalize(text)) is None


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("no puedo entrar a mi cuenta", "es"),
        ("esqueci minha senha", "pt"),
        ("je veux parler à une personne", "fr"),
        ("ich kann mich nicht anmelden", "de"),
        ("パスワードを忘れました", "ja"),
    ],
)
def test_a_few_foreign_words_are_still_caught_in_their_language(text: str, language: str) -> None:
    from bot.language import detect

    assert detect(normalize(text)) == language

