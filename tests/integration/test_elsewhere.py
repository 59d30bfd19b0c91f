"""QA round 3 of issue 14 through the real trained model: words about another service's data,
a device or a bank never act (no ticket, export, notice or erasure request, not even an
ask-back); the same verbs about this assistant still act or ask back; a hedged or mixed reply
to a pending question is asked once more; more ways of asking "bot or human?".

The phrasings are our own, written for this test, and in neither the training data nor the
guard's development: they measure how the model and `bot.guards.about_elsewhere` generalise."""

from __future__ import annotations

import pytest

from bot.core import Bot
from bot.messages import Incoming, Kind, Outgoing

pytestmark = pytest.mark.integration

ACTIONS = {Kind.HANDOFF_STARTED, Kind.HANDOFF_TICKET, Kind.DATA_EXPORT, Kind.PRIVACY_NOTICE, Kind.ERASURE_CONFIRM_REQUEST, Kind.ERASURE_DONE}
ACTS_OR_ASKS = ACTIONS | {Kind.ASK_BACK}

OTHER_PEOPLES_DATA = [
    # browsers and devices
    "purge the history in chrome",
    "how can i remove my saved logins from firefox",
    "delete the cookies on my work computer",
    "erase everything stored on my ipad",
    "wipe the disk on my gaming pc",
    "remove all data from my old samsung phone",
    "delete my pictures off the sd card",
    "clear out the downloads on my mac",
    "get rid of the old files on my external drive",
    "erase the memory of my smartwatch",
    # clouds, mail, social, accounts elsewhere
    "delete the backups sitting in icloud",
    "remove every video from my youtube channel",
    "erase my whole gmail inbox",
    "delete my account on instagram for good",
    "forget my login on the netflix app",
    "remove my old tweets",
    "clear my search history on google",
    "get all my files out of onedrive",
    "download the data amazon keeps on me",
    "send me my spotify data",
    "export my whatsapp group chat",
    "give me a copy of everything facebook has on me",
    "export my linkedin connections",
    "download my photos from google photos",
    # privacy of other companies
    "what does amazon do with my voice recordings",
    "how does facebook use my private messages",
    "does google sell my search data",
    "what does my bank do with my personal information",
    "what personal data does my phone carrier keep",
    "how long does microsoft keep my emails",
    "is my smart tv spying on me",
    "what does tiktok know about my kids",
    # spreadsheets, documents, institutions
    "delete the last sheet in my excel workbook",
    "erase the formulas in my spreadsheet",
    "export my spreadsheet to csv",
    "remove my address from my bank account",
    "close my credit card at the bank",
    "delete my records at the dentist",
    "i want to speak to a human at my insurance",
    "get me a person at the airline about my lost bag",
    "transfer me to someone at my bank",
    "connect me to a live agent at apple",
    "put me on the line with my doctor",
    "talk to a real person at the phone company",
]

OUR_DATA_AND_PEOPLE = [
    "erase everything you have on me",
    "please delete my messages from this chat",
    "forget everything i told you",
    "what do you store about me",
    pytest.param(  # kept visible: the model's miss, not the guard's (it reads ask_capabilities at 0.54)
        "what do you do with what i write here", marks=pytest.mark.xfail(strict=True, reason="model reads it as ask_capabilities")
    ),
    "export my data from this bot",
    "send me everything you hold about me",
    "i'd like to speak to a moderator",
    "get me a human",
    "delete my data",
]


async def say(bot: Bot, user: str, text: str) -> list[Outgoing]:
    return [r for r in await bot.handle(Incoming("replay", user, "direct", text)) if r.kind is not Kind.DISCLOSURE]


def kinds(replies: list[Outgoing]) -> set[Kind]:
    return {r.kind for r in replies}


def test_there_are_enough_fresh_phrasings() -> None:
    assert len(set(OTHER_PEOPLES_DATA)) >= 40


@pytest.mark.parametrize("text", OTHER_PEOPLES_DATA)
async def test_words_about_another_service_never_act_nor_ask(real_bot: Bot, new_user: str, text: str) -> None:
    replies = await say(real_bot, new_user, text)
    assert not kinds(replies) & ACTS_OR_ASKS, [(r.kind, r.intent) for r in replies]


@pytest.mark.parametrize("text", OUR_DATA_AND_PEOPLE)
async def test_the_same_verbs_about_this_assistant_still_act_or_ask(real_bot: Bot, new_user: str, text: str) -> None:
    replies = await say(real_bot, new_user, text)
    assert kinds(replies) & ACTS_OR_ASKS, [(r.kind, r.intent) for r in replies]


@pytest.mark.parametrize("unsure", ["maybe", "not sure", "perhaps", "idk", "hmm maybe later", "i don't know", "no, yes", "yes no", "yeah nah"])
async def test_a_hedged_or_mixed_reply_is_asked_again_then_yes_works(real_bot: Bot, new_user: str, unsure: str) -> None:
    assert Kind.HANDOFF_OFFER in kinds(await say(real_bot, new_user, "this is ridiculous"))
    again = await say(real_bot, new_user, unsure)
    assert kinds(again) == {Kind.HANDOFF_OFFER} and again[0].text.startswith("Sorry, I didn't catch that")
    assert Kind.HANDOFF_STARTED in kinds(await say(real_bot, new_user, "yes"))


async def test_twice_unclear_does_nothing(real_bot: Bot, new_user: str) -> None:
    await say(real_bot, new_user, "this is ridiculous")
    await say(real_bot, new_user, "maybe")
    replies = await say(real_bot, new_user, "not sure")
    assert not kinds(replies) & ACTIONS and Kind.HANDOFF_OFFER not in kinds(replies)
    assert not kinds(await say(real_bot, new_user, "yes")) & ACTIONS  # the question lapsed


async def test_maybe_to_an_erasure_is_asked_again_and_erases_nothing(real_bot: Bot, new_user: str) -> None:
    await say(real_bot, new_user, "/forget-me")
    replies = await say(real_bot, new_user, "maybe")
    assert kinds(replies) == {Kind.ERASURE_CONFIRM_REQUEST} and "/forget-me confirm" in replies[0].text


@pytest.mark.parametrize(
    "text",
    [
        "ur not a human right?",
        "you're not an actual person, are you",
        "u aren't a real guy huh",
        "do i chat with a robot here",
        "am i texting a machine",
        "did i just talk to an ai",
        "is it a bot i'm writing to?",
        "is a computer answering these",
        "you a bot?",
    ],
)
async def test_more_ways_of_asking_bot_or_human_get_the_truth(real_bot: Bot, new_user: str, text: str) -> None:
    replies = await say(real_bot, new_user, text)
    assert [(r.kind, r.intent) for r in replies] == [(Kind.ANSWER, "bot_challenge")]
