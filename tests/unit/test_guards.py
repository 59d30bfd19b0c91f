"""The bot-or-human guard, on phrasings that are not in the training data."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.guards import about_elsewhere, asks_if_human, unclear_answer

UNSEEN_QUESTIONS = [
    "wait am i chatting with an actual human being",
    "is a real person typing these replies",
    "be honest, are you some kind of AI program?",
    "r u a machine or a person",
    "am I speaking to a live agent right now",
    "Is this automated?",
    "human or bot?",
    "who am i talking to",
    "are u real",
]
NOT_QUESTIONS_ABOUT_THE_BOT = [
    "when does the next episode drop",
    "is the human in starfall chronicles evil",
    "is this person allowed to post spoilers",
    "I am talking about the new season",
    "are you open on sunday",
    "the robot in episode 5 was cool",
    "are you able to help with billing",
    "is it real that season 3 is cancelled",
]


@pytest.mark.parametrize("text", UNSEEN_QUESTIONS)
def test_asks_if_human(text: str) -> None:
    assert asks_if_human(text)


@pytest.mark.parametrize("text", NOT_QUESTIONS_ABOUT_THE_BOT)
def test_other_questions_do_not_trigger(text: str) -> None:
    assert not asks_if_human(text)


def test_guard_phrasings_are_not_in_the_training_data() -> None:
    nlu = (Path(__file__).resolve().parents[2] / "rasa_project" / "data" / "nlu.yml").read_text().lower()
    for text in UNSEEN_QUESTIONS[:5]:
        assert text.lower() not in nlu


# QA round 3 (issue 14): negated and "do I talk to" phrasings; our own, not in the training data.
@pytest.mark.parametrize(
    "text",
    ["you are not a person, right", "ur not even a real human lol", "do i speak with a bot now", "am i messaging a program", "is an ai replying to me"],
)
def test_negated_and_do_i_phrasings_ask_if_human(text: str) -> None:
    assert asks_if_human(text)


@pytest.mark.parametrize("text", ["can i talk to a real person", "i want to speak to a human", "do i need to talk to a mod about this", "you're not helping"])
def test_asking_for_a_person_is_not_a_bot_question(text: str) -> None:
    assert not asks_if_human(text)


@pytest.mark.parametrize(
    "text",
    ["nuke the history in my browser", "wipe my work laptop", "what does my bank know about me", "export my outlook contacts", "a human at the tax office please", "remove the pictures from my camera"],
)
def test_other_services_data_is_elsewhere(text: str) -> None:
    assert about_elsewhere(text)


@pytest.mark.parametrize(
    "text",
    ["delete my data", "what do you keep about me", "delete my phone number from your records", "erase my messages in this server", "do you share my data with google", "get me a person", "send me a file with my conversation history"],
)
def test_our_data_is_not_elsewhere(text: str) -> None:
    assert not about_elsewhere(text)


@pytest.mark.parametrize("text", ["maybe", "Not sure.", "perhaps", "idk", "i dont know", "hmm", "no, yes", "yes no", "ok... no"])
def test_hedged_or_mixed_replies_are_unclear(text: str) -> None:
    assert unclear_answer(text)


@pytest.mark.parametrize("text", ["yes", "no", "no thanks", "yes please", "👍", "nope", "sure"])
def test_plain_replies_are_clear(text: str) -> None:
    assert not unclear_answer(text)
