"""Issue 17, the fan's side, through the real model server and the real stores (SQLite and
PostgreSQL): ratings of answers (`/feedback`, tokens checked), opt-in consent storing nothing
before a yes (byte scan of the SQLite files, every PostgreSQL table), and `/my-data` against
its published JSON Schema with the Art. 13/15 facts."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from pathlib import Path

import jsonschema
import pytest
from sqlalchemy import create_engine, inspect, select, text
from sqlalchemy.engine import make_url

from bot.config import AssistantSettings, PrivacySettings
from bot.conversation import ConversationMemory
from bot.core import Bot
from bot.engine.remote import ModelServerEngine
from bot.messages import Address, Incoming, Kind, Outgoing
from bot.privacy.crypto import MasterKeys
from bot.privacy.fan_data import everything
from bot.privacy.pseudonym import Pseudonymizer
from bot.privacy.schema import consents, ratings
from bot.privacy.store import TranscriptStore
from tests.integration.conftest import REPO
from tests.integration.databases import database_url  # noqa: F401 - the fixture

pytestmark = pytest.mark.integration
KEY = b"fan-voice-pseudonym-key-0123456789abcdef"
SCHEMA = json.loads((REPO / "docs" / "my-data.schema.json").read_text())
CONTACTS = PrivacySettings(controller="StreamVerse Test Ltd", contact="privacy@streamverse.test", dpo_contact="dpo@streamverse.test")
QUESTION = "how do I reset my password"
SECRET_WORDS = "my zebra-striped teapot collection"  # a message whose words must never reach the store


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[TranscriptStore]:  # noqa: F811
    opened = TranscriptStore.open(database_url, None, MasterKeys.parse(MasterKeys.generate()), KEY)
    yield opened
    await opened.aclose()


def new_bot(engine: ModelServerEngine, store: TranscriptStore, **privacy: str) -> Bot:
    settings = PrivacySettings(**{**{k: getattr(CONTACTS, k) for k in ("controller", "contact", "dpo_contact")}, **privacy})
    return Bot(engine, Pseudonymizer(KEY), AssistantSettings(), ConversationMemory(1800), store, privacy=settings)


def fan(user: str) -> str:
    return Pseudonymizer(KEY).fan("console", user)


def kinds(replies: list[Outgoing]) -> list[str]:
    return [r.kind.value for r in replies]


async def rows(store: TranscriptStore, table: object, user: str) -> list[dict[str, object]]:
    def read() -> list[dict[str, object]]:
        with store.engine.connect() as connection:
            return [dict(r) for r in connection.execute(select(table).where(table.c.fan == fan(user))).mappings()]  # type: ignore[attr-defined]

    return await store.run(read)


async def say(bot: Bot, user: str, line: str) -> list[Outgoing]:
    return await bot.handle(Incoming("console", user, "console", line))


# Item 1: ratings ---------------------------------------------------------------------------


async def test_feedback_rates_the_last_answer_once_and_is_exported_and_erased(
    model_engine: ModelServerEngine, store: TranscriptStore, new_user: str
) -> None:
    bot = new_bot(model_engine, store)
    replies = await say(bot, new_user, QUESTION)
    [answer] = [r for r in replies if r.kind is Kind.ANSWER]
    assert answer.intent == "faq_login" and answer.rate is not None  # the buttons' token
    bad = await say(bot, new_user, "/feedback bad")
    assert kinds(bad) == ["feedback"] and "/human" in bad[0].text
    [row] = await rows(store, ratings, new_user)
    assert (row["rating"], row["intent"], row["platform"]) == ("bad", "faq_login", "console")
    assert row["confidence"] == pytest.approx(answer.confidence, abs=0.001)
    assert set(row) == {c.name for c in ratings.columns}  # nothing but the minimized columns: no text
    good = await say(bot, new_user, "/feedback good")  # a second rating of the same answer replaces the first
    assert kinds(good) == ["feedback"] and "/human" not in good[0].text
    assert [r["rating"] for r in await rows(store, ratings, new_user)] == ["good"]

    export = json.loads((await say(bot, new_user, "/my-data"))[0].text)
    assert [(r["rating"], r["intent"]) for r in export["ratings"]] == [("good", "faq_login")]
    # The reply events still buffered in memory are written before the export reads (QA 17, item 2).
    assert [e["reason"] for e in export["events"]] == ["disclosure", "answer", "feedback", "feedback"]
    await say(bot, new_user, "/forget-me")
    done = await say(bot, new_user, "/forget-me confirm")
    assert kinds(done) == ["erasure_done"]
    # The receipt names every count it adds up (QA 17, item 8): ratings, events, consent included.
    listed = done[0].text.split(" Copies in backups")[0]
    total = int(re.search(r"erased (\d+) record", listed)[1])  # type: ignore[index]
    assert "ratings of my answers (1)" in listed and "report events" in listed and "consent record (0)" in listed
    assert sum(int(n) for n in re.findall(r"\((\d+)\)", listed)) == total
    await bot.drain()
    assert await rows(store, ratings, new_user) == []


async def test_feedback_after_a_fallback_says_that_reply_cannot_be_rated_not_that_there_is_no_answer(
    model_engine: ModelServerEngine, store: TranscriptStore, new_user: str
) -> None:
    """QA 17b item 4: a model answer, then a fallback, then `/feedback bad` said "There is no
    answer of mine to rate yet in this conversation": false. The fan hears that the last reply
    cannot be rated and what can; nothing is stored (the earlier answer is not guessed at)."""
    bot = new_bot(model_engine, store)
    assert any(r.kind is Kind.ANSWER and r.rate for r in await say(bot, new_user, QUESTION))
    for line in ("qwxz plorf vrrk zzkt", "are you a bot?"):  # a fallback, then the fixed AI-disclosure rule
        replies = await say(bot, new_user, line)
        assert not any(r.rate for r in replies), (line, kinds(replies))
        for rating in ("bad", "good"):
            [reply] = await say(bot, new_user, f"/feedback {rating}")
            assert reply.kind is Kind.FEEDBACK and "\n" not in reply.text, line
            assert "cannot be rated" in reply.text and "no answer" not in reply.text, (line, reply.text)
            assert ("/human" in reply.text) is (rating == "bad")
    assert await rows(store, ratings, new_user) == []
    assert kinds(await say(bot, new_user, QUESTION)) == ["answer"]
    assert kinds(await say(bot, new_user, "/feedback good")) == ["feedback"] and len(await rows(store, ratings, new_user)) == 1


async def test_untrusted_rating_payloads_store_nothing(model_engine: ModelServerEngine, store: TranscriptStore, new_user: str) -> None:
    bot = new_bot(model_engine, store)
    nothing = await say(bot, new_user, "/feedback good")  # no answer yet in this conversation
    assert kinds(nothing) == ["disclosure", "feedback"] and "no answer" in nothing[1].text
    token = next(r.rate for r in await say(bot, new_user, QUESTION) if r.rate)
    assert token is not None
    other = Address("console", new_user + "X", "console")
    for address, payload, rating in (
        (other, token, "good"),  # another fan's click on this fan's answer
        (Address("console", new_user, "elsewhere"), token, "good"),  # the fan, but another conversation
        (Address("console", new_user, "console"), token.replace(":", ";", 1), "good"),  # malformed
        (Address("console", new_user, "console"), token[:-1] + ("0" if token[-1] != "0" else "1"), "bad"),  # forged tag
        (Address("console", new_user, "console"), "faq_billing" + token[token.index(":"):], "bad"),  # another intent
        (Address("console", new_user, "console"), token, "meh"),  # unknown rating
    ):
        refused = await bot.rate(address, payload, rating)
        assert kinds(refused) == ["error"] and "\n" not in refused[0].text and "nothing was stored" in refused[0].text
    assert await rows(store, ratings, new_user) == [] and await rows(store, ratings, new_user + "X") == []
    assert kinds(await bot.rate(Address("console", new_user, "console"), token, "good")) == ["feedback"]
    assert len(await rows(store, ratings, new_user)) == 1


async def test_a_rating_button_from_before_an_erasure_is_refused_afterwards(
    model_engine: ModelServerEngine, store: TranscriptStore, new_user: str
) -> None:
    """QA 17 item 12: the token is bound to the conversation's start, which `/forget-me` deletes."""
    bot = new_bot(model_engine, store)
    token = next(r.rate for r in await say(bot, new_user, QUESTION) if r.rate)
    assert token is not None
    here = Address("console", new_user, "console")
    await say(bot, new_user, "/forget-me")
    assert kinds(await say(bot, new_user, "/forget-me confirm")) == ["erasure_done"]
    await bot.drain()
    for _ in range(2):  # right after the erasure, and once the fan has begun a new conversation
        refused = await bot.rate(here, token, "good")
        assert kinds(refused) == ["error"] and "could not be checked" in refused[0].text and "\n" not in refused[0].text
        await say(bot, new_user, "hello")
    await bot.drain()
    assert await rows(store, ratings, new_user) == []
    fresh = next(r.rate for r in await say(bot, new_user, QUESTION) if r.rate)  # the new conversation's answers rate as before
    assert kinds(await bot.rate(here, str(fresh), "good")) == ["feedback"]


async def test_with_privacy_off_a_rating_is_acknowledged_but_not_kept(
    model_engine: ModelServerEngine, store: TranscriptStore, new_user: str
) -> None:
    bot = new_bot(model_engine, store)
    await say(bot, new_user, "/privacy off")
    await say(bot, new_user, QUESTION)
    reply = await say(bot, new_user, "/feedback bad")
    assert kinds(reply) == ["feedback"] and "did not keep" in reply[0].text and "/human" in reply[0].text
    assert await rows(store, ratings, new_user) == []


# Item 3: opt-in consent --------------------------------------------------------------------


def stored_bytes(database_url: str) -> bytes:  # noqa: F811
    """Everything the store holds: the SQLite files byte for byte (db, -wal, -shm), or every
    row of every PostgreSQL table as text."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        path = Path(str(url.database))
        return b"".join(p.read_bytes() for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm")) if p.exists())
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            names = inspect(connection).get_table_names()
            dump = names + [repr(row) for name in names for row in connection.execute(text(f'SELECT * FROM "{name}"'))]
    finally:
        engine.dispose()
    return "\n".join(dump).encode()


async def test_opt_in_stores_nothing_about_a_fan_before_yes(
    model_engine: ModelServerEngine, store: TranscriptStore, database_url: str, new_user: str  # noqa: F811
) -> None:
    bot = new_bot(model_engine, store, consent="opt-in")
    first = await say(bot, new_user, QUESTION)
    assert kinds(first) == ["disclosure", "answer", "consent_request"]  # answered meanwhile, asked once
    assert kinds(await say(bot, new_user, SECRET_WORDS))[-1] != "consent_request"
    await say(bot, new_user, QUESTION)
    await say(bot, new_user, "/feedback good")
    privacy = await say(bot, new_user, "/privacy")
    assert "not answered yet" in privacy[0].text
    await bot.drain()
    scanned = stored_bytes(database_url)
    assert all(table.encode() in scanned for table in ("turns", "conversations", "ratings", "consents", "data_keys"))
    pseudonyms = Pseudonymizer(KEY)
    for needle in (fan(new_user), pseudonyms.conversation("console", "console", new_user), "zebra-striped", "reset my password"):
        assert needle.encode() not in scanned, needle

    yes = await say(bot, new_user, "/privacy on")
    assert kinds(yes) == ["privacy_notice"]
    [consent] = await rows(store, consents, new_user)
    assert consent["choice"] == "yes" and str(consent["notice_version"]).startswith("n-")
    await say(bot, new_user, QUESTION)
    await bot.drain()
    assert fan(new_user).encode() in stored_bytes(database_url)  # from now on it is kept: the scan sees it
    export = json.loads((await say(bot, new_user, "/my-data"))[0].text)
    assert export["consent"]["choice"] == "yes" and export["turns"]
    assert export["about_this_data"]["legal_basis"]["transcripts_and_ratings"].startswith("your consent")


async def test_opt_in_a_yes_answers_the_question_and_a_no_is_recorded(
    model_engine: ModelServerEngine, store: TranscriptStore, new_user: str
) -> None:
    bot = new_bot(model_engine, store, consent="opt-in")
    await say(bot, new_user, "hello")
    declined = await say(bot, new_user, "no")
    assert kinds(declined) == ["privacy_notice"] and "keep nothing" in declined[0].text
    [consent] = await rows(store, consents, new_user)
    assert consent["choice"] == "no"
    await say(bot, new_user, QUESTION)
    await bot.drain()
    assert json.loads((await say(bot, new_user, "/my-data"))[0].text)["turns"] == []
    await say(bot, new_user, "/privacy on")
    assert [r["choice"] for r in await rows(store, consents, new_user)] == ["yes"]
    assert kinds(await say(bot, new_user, QUESTION)) == ["answer"]
    await bot.drain()
    kept = len(json.loads((await say(bot, new_user, "/my-data"))[0].text)["turns"])
    assert kept == 2
    withdrawn = await say(bot, new_user, "/privacy off")
    assert "from now on I keep nothing" in withdrawn[0].text
    assert kinds(await say(bot, new_user, SECRET_WORDS))[0] != "disclosure"  # the conversation goes on, read only
    await bot.drain()
    export = json.loads((await say(bot, new_user, "/my-data"))[0].text)
    assert len(export["turns"]) == kept and export["consent"]["choice"] == "no"


async def test_opt_in_the_consent_question_stays_answerable_after_other_messages(
    model_engine: ModelServerEngine, store: TranscriptStore, new_user: str
) -> None:
    """QA 17 item 3: once the fan wrote something else, a bare yes or no meets the consent
    question again (never "no question waiting"), and the next yes or no is the answer."""
    bot = new_bot(model_engine, store, consent="opt-in")
    assert kinds(await say(bot, new_user, QUESTION))[-1] == "consent_request"
    assert "consent_request" not in kinds(await say(bot, new_user, "when is the next episode?"))  # the question lapses
    again = await say(bot, new_user, "yes")
    assert kinds(again) == ["consent_request"] and again[0].text.startswith("If that was meant for my question")
    assert await rows(store, consents, new_user) == []  # asked again, not inferred
    assert kinds(await say(bot, new_user, "yes")) == ["privacy_notice"]
    assert [r["choice"] for r in await rows(store, consents, new_user)] == ["yes"]
    assert "no question of mine" in (await say(bot, new_user, "yes"))[0].text  # answered: nothing is open any more


async def test_opt_in_the_consent_buttons_answer_once_then_say_what_is_recorded(
    model_engine: ModelServerEngine, store: TranscriptStore, new_user: str
) -> None:
    """QA 17 item 3: the question's own Yes / No answer it even after it lapsed; an old
    button clicked later changes nothing and says what is recorded."""
    bot = new_bot(model_engine, store, consent="opt-in")
    await say(bot, new_user, QUESTION)
    await say(bot, new_user, "when is the next episode?")
    click = await bot.handle(Incoming("console", new_user, "console", "no", answers="consent"))
    assert kinds(click) == ["privacy_notice"] and "keep nothing" in click[0].text
    later = await bot.handle(Incoming("console", new_user, "console", "yes", answers="consent"))
    assert kinds(later) == ["privacy_notice"] and later[0].text.startswith("Your answer is already recorded: no.")
    assert [r["choice"] for r in await rows(store, consents, new_user)] == ["no"]


# Item 4: the export and its schema -----------------------------------------------------------


async def test_my_data_matches_the_published_schema_and_holds_every_erased_part(
    model_engine: ModelServerEngine, store: TranscriptStore, new_user: str
) -> None:
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    assert {part.name for part in everything()} <= set(SCHEMA["required"])  # everything erasure deletes
    bot = new_bot(model_engine, store, consent="opt-in")
    await say(bot, new_user, QUESTION)
    await say(bot, new_user, "yes")  # consents
    await say(bot, new_user, QUESTION)
    await say(bot, new_user, "/feedback bad")
    await say(bot, new_user, "/human")
    await bot.drain()
    export = json.loads((await say(bot, new_user, "/my-data"))[0].text)
    jsonschema.validate(export, SCHEMA, cls=jsonschema.Draft202012Validator)
    assert export["ratings"] and export["tickets"] and export["turns"] and export["consent"]["choice"] == "yes"
    about = export["about_this_data"]
    assert about["controller"] == {"name": "StreamVerse Test Ltd", "contact": "privacy@streamverse.test"}
    assert about["data_protection_officer"] == {"contact": "dpo@streamverse.test"}
    notice = (await say(bot, new_user, "/privacy"))[0].text
    for fact in ("StreamVerse Test Ltd", "dpo@streamverse.test", "Legal basis", "30 days", "moderators", "Slack or Discord",
                 "/forget-me", "complain"):
        assert fact in notice, fact
    with pytest.raises(jsonschema.ValidationError):  # the schema is strict: a missing part fails it
        jsonschema.validate({k: v for k, v in export.items() if k != "ratings"}, SCHEMA, cls=jsonschema.Draft202012Validator)


async def test_my_data_before_consent_says_nothing_is_logged(
    model_engine: ModelServerEngine, store: TranscriptStore, new_user: str
) -> None:
    """QA 17 item 4: under opt-in, before any answer to the consent question, the export
    says logging has not started (not the stored default "on") and what memory holds."""
    bot = new_bot(model_engine, store, consent="opt-in")
    await say(bot, new_user, QUESTION)
    export = json.loads((await say(bot, new_user, "/my-data"))[0].text)
    jsonschema.validate(export, SCHEMA, cls=jsonschema.Draft202012Validator)
    assert export["transcript_logging"] == "waiting_for_consent" and export["consent"] is None
    assert export["turns"] == [] and export["ratings"] == [] and export["encryption_key"] == "none"
    assert "until you agree" in export["held_in_memory"]["conversation_state"]
    await say(bot, new_user, "/privacy off")  # declined: recorded, and logging is off
    export = json.loads((await say(bot, new_user, "/my-data"))[0].text)
    assert (export["transcript_logging"], export["consent"]["choice"]) == ("off", "no")
    await say(bot, new_user, "/privacy on")
    export = json.loads((await say(bot, new_user, "/my-data"))[0].text)
    assert export["transcript_logging"] == "on" and "conversation_state" not in export["held_in_memory"]


async def test_ratings_expire_with_the_retention_purge(model_engine: ModelServerEngine, store: TranscriptStore, new_user: str) -> None:
    from datetime import datetime, timedelta

    bot = new_bot(model_engine, store)
    await say(bot, new_user, QUESTION)
    await say(bot, new_user, "/feedback good")
    await store.purge(datetime.utcnow() - timedelta(days=1))  # a day's retention: today's rating stays
    assert len(await rows(store, ratings, new_user)) == 1
    await store.purge(datetime.utcnow() + timedelta(seconds=5))
    assert await rows(store, ratings, new_user) == []


async def test_opt_in_memory_is_dropped_on_erasure_here_and_elsewhere(
    model_engine: ModelServerEngine, store: TranscriptStore, new_user: str
) -> None:
    bot = new_bot(model_engine, store, consent="opt-in")
    assert kinds(await say(bot, new_user, "hello"))[0] == "disclosure"
    await say(bot, new_user, "/forget-me")
    assert kinds(await say(bot, new_user, "/forget-me confirm")) == ["erasure_done"]
    assert kinds(await say(bot, new_user, "hello"))[0] == "disclosure"  # the held state went with the erasure
    await bot._forget_erased_elsewhere(fan(new_user))  # noqa: SLF001 - the store's hook for another process's erasure
    assert kinds(await say(bot, new_user, "hello"))[0] == "disclosure"
