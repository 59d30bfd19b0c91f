from __future__ import annotations

import pytest

from bot.commands import Command, CommandError, is_command, parse_command


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("/human", Command("/human")),
        ("  /HUMAN  ", Command("/human")),
        ("/human cancel", Command("/human", "cancel")),
        ("/forget-me", Command("/forget-me")),
        ("/forget_me CONFIRM", Command("/forget-me", "confirm")),
        ("/my-data", Command("/my-data")),
        ("/mydata", Command("/my-data")),
        ("/privacy off", Command("/privacy", "off")),
        ("/why", Command("/why")),
    ],
)
def test_known_commands_parse(text: str, expected: Command) -> None:
    assert is_command(text)
    assert parse_command(text) == expected


@pytest.mark.parametrize("text", ["/pizza", "/", "/why now", "/privacy maybe", "/forget-me everything"])
def test_unknown_commands_and_arguments_are_one_line_errors(text: str) -> None:
    with pytest.raises(CommandError) as raised:
        parse_command(text)
    assert "\n" not in str(raised.value)


def test_plain_text_is_not_a_command() -> None:
    assert not is_command("how do I cancel /human?")


def test_a_bare_command_that_needs_an_argument_says_how_to_use_it() -> None:
    with pytest.raises(CommandError) as raised:
        parse_command("/feedback")
    assert str(raised.value) == "Use /feedback good or /feedback bad: it rates my last answer."
