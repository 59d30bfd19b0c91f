"""Issue 14 through the real trained model: off-topic text, fans' own phrasings, pending
questions, languages, and a quality floor over the public dev sets via a real `bot replay`."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from bot.core import Bot
from bot.engine.remote import ModelServerEngine
from bot.messages import Kind, Outgoing
from bot.privacy.store import TranscriptStore
from tests.integration.conftest import REAL_BOT_KEY

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "bench"))
from eval_dir import find as find_eval_dir  # noqa: E402  (the benchmarks' own lookup)

ACTIONS = {Kind.HANDOFF_STARTED, Kind.HANDOFF_TICKET, Kind.DATA_EXPORT, Kind.PRIVACY_NOTICE, Kind.ERASURE_CONFIRM_REQUEST}

pytestmark = pytest.mark.integration


async def say(bot: Bot, user: str, text: str) -> list[Outgoing]:
    from bot.messages import Incoming

    return [r for r in await bot.handle(Incoming("replay", user, "direct", text)) if r.kind is not Kind.DISCLOSURE]


def kinds(replies: list[Outgoing]) -> set[Kind]:
    return {r.kind for r in replies}


@pytest.mark.parametrize(
    "text",
    [
        "how many people still live on greenland",
        "when will the daffodils bloom this year",
        "sell three calls of nvda",
        "create a contact labeled mom",
        "please print out copies of my resume",
        "who plays han solo",
    ],
)
async def test_off_topic_quoted_in_the_issue_falls_back_without_action(real_bot: Bot, new_user: str, text: str) -> None:
    replies = await say(real_bot, new_user, text)
    assert kinds(replies) == {Kind.FALLBACK}


@pytest.mark.parametrize("text", ["my card 4111 1111 1111 1111 was charged twice", "wen is teh nxt ep droppin"])
async def test_fans_own_phrasings_get_the_topic(real_bot: Bot, new_user: str, text: str) -> None:
    replies = await say(real_bot, new_user, text)
    assert replies[0].kind is Kind.ANSWER and replies[0].intent in {"faq_billing", "faq_schedule"}


async def test_the_model_sees_the_card_number_as_its_placeholder(model_engine: ModelServerEngine, store: TranscriptStore, new_user: str) -> None:
    from bot.config import AssistantSettings
    from bot.conversation import ConversationMemory
    from bot.core import Bot
    from bot.engine import EngineResult
    from bot.privacy.pseudonym import Pseudonymizer

    sent: list[str] = []

    class Recording:
        """The real model server's client, noting the text the bot sends it over the wire."""

        async def respond(self, pseudonym: str, text: str) -> EngineResult:
            sent.append(text)
            return await model_engine.respond(pseudonym, text)

        async def forget(self, pseudonym: str) -> int:
            return await model_engine.forget(pseudonym)

    bot = Bot(Recording(), Pseudonymizer(REAL_BOT_KEY), AssistantSettings(), ConversationMemory(idle_seconds=1800), store)
    replies = await say(bot, new_user, "my card 4111 1111 1111 1111 was charged twice")
    assert sent == ["my card [CARD] was charged twice"]
    assert replies[0].intent == "faq_billing"


async def test_a_complaint_about_a_topic_gets_the_answer_and_the_offer(real_bot: Bot, new_user: str) -> None:
    replies = await say(real_bot, new_user, "I was charged twice this month and I am furious")
    assert [(r.kind, r.intent) for r in replies] == [(Kind.ANSWER, "faq_billing"), (Kind.HANDOFF_OFFER, None)]


@pytest.mark.parametrize("text", ["who’s typing?", "who‘s typing?", "are you a bot\u200b?", "ARE YOU A BOT???"])
async def test_the_bot_or_human_guard_reads_phone_punctuation(real_bot: Bot, new_user: str, text: str) -> None:
    replies = await say(real_bot, new_user, text)
    assert [(r.kind, r.intent) for r in replies] == [(Kind.ANSWER, "bot_challenge")]


@pytest.mark.parametrize("yes", ["👍", "👍🏽", "yes", "Yes please!", "sure"])
async def test_a_yes_in_words_or_emoji_takes_up_the_offer(real_bot: Bot, new_user: str, yes: str) -> None:
    offer = await say(real_bot, new_user, "I was charged twice this month and I am furious")
    assert Kind.HANDOFF_OFFER in kinds(offer)
    assert Kind.HANDOFF_STARTED in kinds(await say(real_bot, new_user, yes))


@pytest.mark.parametrize("no", ["👎", "no", "no thanks"])
async def test_a_no_declines_the_offer_and_opens_nothing(real_bot: Bot, new_user: str, no: str) -> None:
    await say(real_bot, new_user, "this is ridiculous")
    replies = await say(real_bot, new_user, no)
    assert not kinds(replies) & ACTIONS
    assert not kinds(await say(real_bot, new_user, "yes")) & ACTIONS  # the offer is gone


async def test_an_unclear_reply_asks_once_more_then_yes_still_works(real_bot: Bot, new_user: str) -> None:
    await say(real_bot, new_user, "this is ridiculous")
    again = await say(real_bot, new_user, "🤔")
    assert kinds(again) == {Kind.HANDOFF_OFFER}
    assert Kind.HANDOFF_STARTED in kinds(await say(real_bot, new_user, "👍"))


async def test_yes_with_nothing_pending_never_pretends(real_bot: Bot, new_user: str) -> None:
    for text in ("yes", "👍", "ok"):
        replies = await say(real_bot, new_user, text)
        assert not kinds(replies) & ACTIONS
        assert all("Great!" not in r.text for r in replies)


async def test_erasure_is_never_done_on_a_bare_yes(real_bot: Bot, new_user: str) -> None:
    await say(real_bot, new_user, "/forget-me")
    replies = await say(real_bot, new_user, "👍")
    assert kinds(replies) == {Kind.ERASURE_CONFIRM_REQUEST} and "/forget-me confirm" in replies[0].text


async def test_unsure_words_ask_back_before_acting(real_bot: Bot, new_user: str) -> None:
    replies = await say(real_bot, new_user, ASK_BACK_PHRASE)
    assert kinds(replies) == {Kind.ASK_BACK}
    assert Kind.HANDOFF_STARTED in kinds(await say(real_bot, new_user, "yes"))


async def test_confident_words_act(real_bot: Bot, new_user: str) -> None:
    assert Kind.HANDOFF_STARTED in kinds(await say(real_bot, new_user, "i want to talk to a real person"))


@pytest.mark.parametrize(
    "text, language, word",
    [
        ("¿cuándo sale el próximo episodio?", "es", "persona"),
        ("quando sai o próximo episódio?", "pt", "pessoa"),
        ("quand sort le prochain épisode ?", "fr", "personne"),
        ("wann kommt die nächste Folge?", "de", "Menschen"),
        ("次のエピソードはいつ公開されますか？", "ja", "担当者"),
    ],
)
async def test_other_languages_get_an_honest_reply_in_theirs(real_bot: Bot, new_user: str, text: str, language: str, word: str) -> None:
    replies = await say(real_bot, new_user, text)
    assert [(r.kind, r.intent) for r in replies] == [(Kind.FALLBACK, f"language_{language}")]
    assert word in replies[0].text and "/human" in replies[0].text


@pytest.mark.parametrize("text", ["ok", "lol", "thx", "cant log in", "wen is teh nxt ep droppin", "merci"])
async def test_short_english_is_not_taken_for_another_language(real_bot: Bot, new_user: str, text: str) -> None:
    replies = await say(real_bot, new_user, text)
    assert not any((r.intent or "").startswith("language_") for r in replies)


def test_quality_floor_on_the_dev_sets_through_bot_replay(trained_model: Path) -> None:
    from offtopic_eval import main as _  # noqa: F401  (the benchmark's own code)
    from offtopic_eval import replay_lines, score

    eval_dir = find_eval_dir()
    if eval_dir is None:  # loud, not a silent skip: the floor is measured on the dev sets or not at all
        pytest.fail("no shared NLU dev sets found (see bench/eval_dir.py); set NLU_EVAL_DIR")

    off = [line.strip() for line in (eval_dir / "off_topic_dev.txt").read_text(encoding="utf-8").splitlines() if line.strip()]
    challenge = [line.strip() for line in (eval_dir / "bot_challenge_dev.txt").read_text(encoding="utf-8").splitlines() if line.strip()]
    replies = replay_lines(REPO / ".venv" / "bin" / "bot", off + challenge)
    off_score, challenge_score = score(off, replies[: len(off)]), score(challenge, replies[len(off) :])
    assert off_score["fallback"] >= 0.90 and off_score["actions"] == 0
    assert challenge_score["actions"] == 0 and challenge_score["truthful_ai"] >= 0.95


ASK_BACK_PHRASE = "want someone"
# human_handoff at ~0.56 with this model: between fallback and certainty
