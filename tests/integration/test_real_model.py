"""The policy on the real trained Rasa model."""

from __future__ import annotations

import pytest

from bot.core import Bot
from bot.engine.remote import ModelServerEngine
from bot.messages import Incoming
from tests.unit.test_guards import UNSEEN_QUESTIONS

pytestmark = pytest.mark.integration


def kinds(replies) -> list[str]:  # type: ignore[no-untyped-def]
    return [r.kind.value for r in replies]


@pytest.mark.parametrize(
    "first_message",
    ["hi", "how much is premium?", "/privacy", "/why", "are you a bot", "zzkq vvbn", "", "/nonsense"],
)
async def test_every_new_conversation_starts_with_the_disclosure(real_bot: Bot, new_user: str, first_message: str) -> None:
    first = await real_bot.handle(Incoming("slack", new_user, "D1", first_message))
    assert first[0].kind.value == "disclosure" and len(first) >= 2
    assert kinds(await real_bot.handle(Incoming("slack", new_user, "D1", "thanks")))[0] != "disclosure"
    in_channel = await real_bot.handle(Incoming("slack", new_user, "C-general", "hi"))
    assert in_channel[0].kind.value == "disclosure"


@pytest.mark.parametrize("question", UNSEEN_QUESTIONS)
async def test_bot_or_human_questions_get_the_truthful_answer(real_bot: Bot, new_user: str, question: str) -> None:
    await real_bot.handle(Incoming("discord", new_user, "DM", "hello"))
    replies = await real_bot.handle(Incoming("discord", new_user, "DM", question))
    assert kinds(replies) == ["answer"]
    assert replies[0].intent == "bot_challenge"
    assert "not a human" in replies[0].text and "/human" in replies[0].text


@pytest.mark.parametrize(
    ("message", "intent"),
    [
        ("i think i got billed twice for october", "faq_billing"),
        ("forgot my password and the reset mail never shows up", "faq_login"),
        ("picture freezes every few seconds on my ps5", "faq_playback"),
        ("what time does the new neon harbor episode come out", "faq_schedule"),
        ("how do i get a seat for the starfall live premiere", "faq_live_events"),
        ("my t-shirt order still hasn't shipped", "faq_merch"),
        ("are spoilers allowed in general chat", "faq_community_rules"),
        ("someone is sending me threats in dms", "faq_report_harassment"),
    ],
)
async def test_faq_questions_get_their_answers(real_bot: Bot, new_user: str, message: str, intent: str) -> None:
    replies = await real_bot.handle(Incoming("console", new_user, "c", message))
    offered = ["handoff_offer"] if intent == "faq_report_harassment" else []  # a person is offered
    assert kinds(replies) == ["disclosure", "answer", *offered]
    assert replies[1].intent == intent and replies[1].confidence is not None


async def test_two_fallbacks_in_a_row_offer_a_handoff(real_bot: Bot, new_user: str) -> None:
    await real_bot.handle(Incoming("console", new_user, "c", "hello"))
    first = await real_bot.handle(Incoming("console", new_user, "c", "what's the capital of peru"))
    assert kinds(first) == ["fallback"]
    second = await real_bot.handle(Incoming("console", new_user, "c", "can you do my algebra homework"))
    assert kinds(second) == ["fallback", "handoff_offer"]


async def test_words_route_to_the_privacy_features(real_bot: Bot, new_user: str) -> None:
    await real_bot.handle(Incoming("console", new_user, "c", "hello"))
    assert kinds(await real_bot.handle(Incoming("console", new_user, "c", "delete everything you know about me"))) == [
        "erasure_confirm_request"
    ]
    # Issue 14: words act only on certainty; this phrasing scores below it, so the assistant asks
    # back first and a yes then does what the question named. The phrasing sits between "what do
    # you keep about me" (privacy notice) and "what info do you have on me" (data export); which of
    # the two is asked depends on the training data, so the test holds the question to its action.
    asked = await real_bot.handle(Incoming("console", new_user, "c", "what info do you keep on me"))
    assert kinds(asked) == ["ask_back"]
    action = "data_export" if "/my-data" in asked[0].text else "privacy_notice"
    assert "/my-data" in asked[0].text or "/privacy" in asked[0].text
    assert kinds(await real_bot.handle(Incoming("console", new_user, "c", "yes"))) == [action]


async def test_erasure_drops_the_rasa_tracker_which_is_keyed_by_pseudonym(
    real_bot: Bot, model_engine: ModelServerEngine, new_user: str
) -> None:
    from bot.privacy.pseudonym import Pseudonymizer
    from tests.integration.conftest import REAL_BOT_KEY

    pseudonyms = Pseudonymizer(REAL_BOT_KEY)
    control = new_user + "C"
    for user in (new_user, control):
        await real_bot.handle(Incoming("slack", user, "D1", "hello"))
    done = await real_bot.handle(Incoming("slack", new_user, "D1", "/forget-me confirm"))
    assert kinds(done) == ["erasure_done"]
    # The model server's forget route says whether it still held a tracker: the erased fan's was
    # dropped by the erasure; the control fan's is still there (and is dropped now).
    assert await model_engine.forget(pseudonyms.fan("slack", new_user)) == 0
    assert await model_engine.forget(pseudonyms.fan("slack", control)) == 1
    assert kinds(await real_bot.handle(Incoming("slack", new_user, "D1", "hello")))[0] == "disclosure"
