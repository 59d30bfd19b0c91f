"""The bot-or-human guard, on phrasings that are not in the training data."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.guards import asks_if_human

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
