"""The policy pipeline on a fake engine: ordering rules, guards, fallbacks, commands."""

from __future__ import annotations

import asyncio

from bot.core import Bot
from bot.messages import Incoming, Kind
from bot.privacy.pseudonym import Pseudonymizer
from bot.testing.fake_engine import FakeEngine
from tests.conftest import TEST_KEY


def fan(text: str, user: str = "U1", conversation: str = "D1", platform: str = "slack") -> Incoming:
    return Incoming(platform, user, conversation, text)


def kinds(replies) -> list[str]:  # type: ignore[no-untyped-def]
    return [r.kind.value for r in replies]


async def test_first_contact_gets_disclosure_before_the_answer(bot: Bot) -> None:
    replies = await bot.handle(fan("hello"))
    assert kinds(replies) == ["disclosure", "answer"]
    disclosure = replies[0].text
    assert "AI assistant" in disclosure and "not a human" in disclosure
    for command in ("/human", "/privacy", "/forget-me"):
        assert command in disclosure


async def test_disclosure_once_per_conversation_and_again_in_a_new_one(bot: Bot) -> None:
    await bot.handle(fan("hello"))
    assert kinds(await bot.handle(fan("refund please"))) == ["answer"]
    assert kinds(await bot.handle(fan("hello", conversation="C-general")))[0] == "disclosure"
    assert kinds(await bot.handle(fan("hello", user="U2")))[0] == "disclosure"
    assert kinds(await bot.handle(fan("hello", platform="discord")))[0] == "disclosure"


async def test_disclosure_comes_first_even_when_the_first_message_is_a_command_or_invalid(bot: Bot) -> None:
    assert kinds(await bot.handle(fan("/privacy"))) == ["disclosure", "privacy_notice"]
    assert kinds(await bot.handle(fan("", user="U9"))) == ["disclosure", "error"]


async def test_every_assistant_message_is_marked_as_ai(bot: Bot) -> None:
    for text in ("hello", "what's the weather", "/why", "/privacy", "/nope", ""):
        for reply in await bot.handle(fan(text)):
            assert reply.from_ai


async def test_idle_conversation_is_a_first_contact_again(engine: FakeEngine, store) -> None:  # type: ignore[no-untyped-def]
    from bot.config import AssistantSettings
    from bot.conversation import ConversationMemory
    from bot.privacy.pseudonym import Pseudonymizer

    now = [0.0]
    memory = ConversationMemory(idle_seconds=60, clock=lambda: now[0])
    bot = Bot(engine, Pseudonymizer(b"k" * 32), AssistantSettings(), memory, store)
    await bot.handle(fan("hello"))
    now[0] += 30
    assert kinds(await bot.handle(fan("hello"))) == ["answer"]
    now[0] += 61
    assert kinds(await bot.handle(fan("hello")))[0] == "disclosure"


async def test_bot_or_human_guard_overrides_whatever_the_model_predicts(bot: Bot, engine: FakeEngine) -> None:
    engine.rules = {"person": ("faq_billing", 0.99)}  # the model misreads the question
    await bot.handle(fan("hello"))
    replies = await bot.handle(fan("is a real person typing these replies"))
    assert kinds(replies) == ["answer"]
    assert replies[0].intent == "bot_challenge"
    assert "AI" in replies[0].text and "not a human" in replies[0].text
    assert "/human" in replies[0].text


async def test_model_bot_challenge_gets_the_fixed_truthful_text(bot: Bot) -> None:
    await bot.handle(fan("hello"))
    replies = await bot.handle(fan("you sound like a robot lol"))
    assert replies[0].intent == "bot_challenge"
    assert "not a human" in replies[0].text and "[bot_challenge answer]" not in replies[0].text


async def test_fallback_offers_human_and_two_in_a_row_offer_a_handoff(bot: Bot) -> None:
    await bot.handle(fan("hello"))
    first = await bot.handle(fan("blorp"))
    assert kinds(first) == ["fallback"] and "/human" in first[0].text
    assert first[0].intent == "nlu_fallback" and first[0].confidence == 0.21
    assert kinds(await bot.handle(fan("what's the weather"))) == ["fallback", "handoff_offer"]


async def test_an_answer_between_fallbacks_resets_the_streak(bot: Bot) -> None:
    await bot.handle(fan("hello"))
    await bot.handle(fan("blorp"))
    await bot.handle(fan("refund"))
    assert kinds(await bot.handle(fan("blorp"))) == ["fallback"]


async def test_complaint_gets_an_answer_and_a_handoff_offer(bot: Bot) -> None:
    await bot.handle(fan("hello"))
    assert kinds(await bot.handle(fan("this is useless"))) == ["answer", "handoff_offer"]


async def test_accepting_a_handoff_offer_opens_a_ticket_with_the_reason(bot: Bot) -> None:
    await bot.handle(fan("hello"))
    await bot.handle(fan("this is useless"))
    replies = await bot.handle(fan("yes"))
    assert kinds(replies) == ["handoff_started", "handoff_ticket"]
    assert replies[1].to == "desk" and "complained" in replies[1].text
    assert replies[0].ticket == replies[1].ticket == "1"


async def test_an_unanswered_offer_is_used_up(bot: Bot) -> None:
    await bot.handle(fan("hello"))
    await bot.handle(fan("this is useless"))
    await bot.handle(fan("refund"))
    assert kinds(await bot.handle(fan("yes"))) == ["answer"]


async def test_handoff_and_privacy_intents_route_like_their_commands(bot: Bot) -> None:
    await bot.handle(fan("hello"))
    assert kinds(await bot.handle(fan("what do you store"))) == ["privacy_notice"]
    assert kinds(await bot.handle(fan("send me my data"))) == ["data_export"]
    assert kinds(await bot.handle(fan("delete everything"))) == ["erasure_confirm_request"]
    assert kinds(await bot.handle(fan("let me talk to a person"))) == ["handoff_started", "handoff_ticket"]
    assert kinds(await bot.handle(fan("/human"))) == ["handoff_started"]  # no second ticket


async def test_forget_me_asks_then_erases_everything_and_next_message_is_first_contact(
    bot: Bot, engine: FakeEngine
) -> None:
    await bot.handle(fan("hello"))
    await bot.handle(fan("hello", conversation="C2"))
    pseudonym = engine.seen[0][0]
    assert engine.history_of(pseudonym) == 2
    assert kinds(await bot.handle(fan("/forget-me"))) == ["erasure_confirm_request"]
    done = await bot.handle(fan("/forget-me confirm"))
    assert kinds(done) == ["erasure_done"]
    assert "conversation states (2)" in done[0].text
    assert engine.history_of(pseudonym) is None
    assert kinds(await bot.handle(fan("hello")))[0] == "disclosure"
    again = await bot.handle(fan("/forget-me confirm"))
    assert kinds(again) == ["erasure_done"]  # idempotent


async def test_a_bare_yes_never_erases(bot: Bot, engine: FakeEngine) -> None:
    await bot.handle(fan("hello"))
    await bot.handle(fan("please delete everything about me"))
    replies = await bot.handle(fan("yes"))
    assert kinds(replies) == ["erasure_confirm_request"]
    assert engine.history_of(engine.seen[0][0]) is not None


async def test_why_explains_the_last_answer(bot: Bot) -> None:
    assert "no answer" in (await bot.handle(fan("/why")))[1].text
    await bot.handle(fan("refund"))
    why = await bot.handle(fan("/why"))
    assert kinds(why) == ["explanation"]
    assert "faq_billing" in why[0].text and "0.91" in why[0].text and "automatically" in why[0].text
    await bot.handle(fan("blorp"))
    why = (await bot.handle(fan("/why")))[0]
    assert "faq_playback" in why.text and "0.21" in why.text


async def test_why_after_the_language_guard_names_the_language_rule_not_the_bot_question(bot: Bot) -> None:
    """QA round 3: /why said "you asked whether I'm a bot" after the language guard's reply."""
    await bot.handle(fan("hello"))
    [guarded] = await bot.handle(fan("wie kann ich mein Abonnement kündigen?"))
    assert guarded.intent == "language_de"
    why = (await bot.handle(fan("/why")))[0]
    assert "language" in why.text and "bot or a person" not in why.text


async def test_bad_input_gets_one_error_and_nothing_crashes(bot: Bot) -> None:
    await bot.handle(fan("hello"))
    assert kinds(await bot.handle(fan("   "))) == ["error"]
    long = await bot.handle(fan("x" * 4001))
    assert kinds(long) == ["error"] and "4001" in long[0].text
    assert kinds(await bot.handle(fan("x" * 2001), max_chars=2000)) == ["error"]
    unknown = await bot.handle(fan("/pizza"))
    assert kinds(unknown) == ["error"] and "/pizza" in unknown[0].text and "/human" in unknown[0].text
    assert kinds(await bot.handle(fan("/privacy maybe"))) == ["error"]
    assert kinds(await bot.handle(fan("the app crashed"))) == ["error"]  # the engine raised
    assert kinds(await bot.handle(fan("hello"))) == ["answer"]  # and the bot goes on


async def test_attachment_only_message_is_an_error(bot: Bot) -> None:
    replies = await bot.handle(Incoming("discord", "U1", "D1", "", attachments=1))
    assert kinds(replies) == ["disclosure", "error"]


async def test_only_pseudonyms_reach_the_engine(bot: Bot, engine: FakeEngine) -> None:
    await bot.handle(fan("hello", user="U0RAWSLACKID"))
    await bot.handle(fan("hello", user="U0RAWSLACKID", platform="discord"))
    (first, _), (second, _) = engine.seen
    assert "U0RAWSLACKID" not in first and len(first) == 64
    assert first != second  # the platform is part of the identity


async def test_messages_of_one_fan_are_handled_one_at_a_time(bot: Bot, engine: FakeEngine) -> None:
    active = 0
    peak = 0
    original = engine.respond

    async def slow_respond(pseudonym: str, text: str):  # type: ignore[no-untyped-def]
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        await asyncio.sleep(0.01)
        active -= 1
        return await original(pseudonym, text)

    engine.respond = slow_respond  # type: ignore[method-assign]
    await asyncio.gather(*(bot.handle(fan("hello")) for _ in range(5)))
    assert peak == 1
    results = await asyncio.gather(*(bot.handle(fan("hello", user=f"V{i}")) for i in range(5)))
    assert all(kinds(r)[0] == "disclosure" for r in results)


async def test_with_receipts_the_disclosure_is_kept_only_once_delivered_and_sent_again_when_lost(bot: Bot, store) -> None:  # type: ignore[no-untyped-def]
    first = await bot.handle(fan("refund please"), receipts=True)
    assert kinds(first) == ["disclosure", "answer"]
    assert kinds(await bot.handle(fan("password?"), receipts=True)) == ["answer"]  # one disclosure out at a time
    await bot.undelivered(fan("").address, first[0])
    again = await bot.handle(fan("hello"), receipts=True)
    assert kinds(again) == ["disclosure", "answer"]
    await bot.delivered(fan("").address, again[0])
    await bot.drain()
    stored = [t["kind"] for t in (await store.export(Pseudonymizer(TEST_KEY).fan("slack", "U1")))["turns"]]
    assert stored.count("disclosure") == 1 and stored[-1] == "disclosure"


async def test_a_disclosure_delivered_after_an_erasure_is_not_kept(bot: Bot, store) -> None:  # type: ignore[no-untyped-def]
    first = await bot.handle(fan("refund please"), receipts=True)
    await bot.handle(fan("/forget-me"), receipts=True)
    assert kinds(await bot.handle(fan("/forget-me confirm"), receipts=True)) == ["erasure_done"]
    await bot.delivered(fan("").address, first[0])  # it arrives only now
    await bot.drain()
    assert await store.count_turns(Pseudonymizer(TEST_KEY).fan("slack", "U1")) == 0


async def test_a_message_of_only_invisible_characters_is_empty_and_never_reaches_the_model(bot: Bot, engine: FakeEngine) -> None:
    for text in ("\u200b", "\u200d\u200d", "\ufeff", " \u200b "):
        replies = await bot.handle(Incoming("slack", "U-INVISIBLE", "D1", text))
        assert replies[-1].kind.value == "error" and "empty" in replies[-1].text
    assert engine.seen == []


async def test_messages_that_waited_while_their_fan_was_erased_go_and_later_ones_are_answered(bot: Bot) -> None:
    """`ARRIVED` is when a message reached the process (connectors.intake sets it)."""
    import time

    from bot.engine import ARRIVED
    from bot.privacy.notify import ERASED, fan_token

    start = time.monotonic()
    token = ARRIVED.set(start)
    try:
        await bot.handle(Incoming("slack", "U1", "im", "hello"))
        ARRIVED.set(start + 1)  # the erasure's request came at +1 s
        erased = await bot.handle(Incoming("slack", "U1", "im", "/forget-me confirm"))
        assert any(r.kind is Kind.ERASURE_DONE for r in erased)
        ARRIVED.set(start + 0.5)  # came before the request, waited meanwhile: goes with the rest
        assert await bot.handle(Incoming("slack", "U1", "im", "I need a refund")) == []
        ARRIVED.set(start + 2)  # came after: the fan's new start
        assert [r.kind for r in await bot.handle(Incoming("slack", "U1", "im", "I need a refund"))][0] is Kind.DISCLOSURE
        # Erased by another process (its announcement): what waited here goes too.
        # Whether or not this process still holds anything of the fan.
        fan = bot._pseudonyms.fan("slack", "U2")
        bot._store.changed(ERASED, fan_token(fan), "another-process")
        ARRIVED.set(time.monotonic() - 1)  # came before the announcement
        assert await bot.handle(Incoming("slack", "U2", "im", "hello")) == []
        ARRIVED.set(None)  # a slash command is always answered
        assert await bot.handle(Incoming("slack", "U2", "im", "/privacy"))
    finally:
        ARRIVED.reset(token)
