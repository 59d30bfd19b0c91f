"""One error funnel for every connector (issue 16 item 4): an exception while handling a fan's
message gives the fan an `error` reply, and never leaves a Discord command "thinking…"; it is
logged once, by type, never with the text or an id. Real slack-bolt (Socket Mode and HTTP)
and discord.py against the stand-ins, and the console, with a dialogue engine whose `forget`
fails the way no guard in the core expects (the fault is in the engine's double, not in our code).
On Discord also failures in the connector around the funnel, forced by what the platform can
send (a timestamp no datetime holds, a button or command of an older version) or by the
database going away after a deferral."""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass

import pytest
from sqlalchemy.engine import make_url

from bot.config import AssistantSettings
from bot.conversation import ConversationMemory
from bot.core import STORE_DOWN_TEXT, Bot
from bot.privacy.crypto import MasterKeys
from bot.privacy.pseudonym import Pseudonymizer
from bot.privacy.store import TranscriptStore
from bot.testing.fake_engine import FakeEngine
from connectors import discord_connector
from connectors.base import HANDLING_FAILED_TEXT
from connectors.console import ConsoleConnector
from tests.integration import test_discord_connector as discord_tests
from tests.integration import test_slack_connector as slack_tests
from tests.integration.test_database_outage import Proxy
from tests.integration.test_privacy_store import database_url  # noqa: F401  (fixture)

pytestmark = pytest.mark.integration
WORDS = "the-fans-own-words-7f3a"
FAILED = HANDLING_FAILED_TEXT.split(".")[0]  # "Sorry, something went wrong on my side with that message"


@dataclass
class ForgetFails(FakeEngine):
    """An engine whose `forget` raises what nothing in the core catches, quoting content."""

    async def forget(self, pseudonym: str) -> int:
        raise RuntimeError(f"forget failed for {pseudonym}: {WORDS}")


def funnel_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if "message failed" in r.getMessage() or "event failed" in r.getMessage()]


def assert_logged_once_without_content(caplog: pytest.LogCaptureFixture, platform: str, user: str, failures: int) -> None:
    records = funnel_records(caplog)
    assert [r.getMessage() for r in records] == [f"handling a {platform} message failed: RuntimeError"] * failures
    shown = [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO]
    assert not any(WORDS in line or user in line or "forget-me" in line for line in shown)
    assert not any(r.exc_info for r in caplog.records if r.levelno >= logging.INFO)  # no traceback quoting it either


@pytest.mark.parametrize("mode", ["socket", "http"])
async def test_slack_fans_get_an_error_reply_for_a_message_and_a_command(
    mode: str, store: TranscriptStore, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    async for world in slack_tests.start_world(mode, ForgetFails(), store):  # type: ignore[arg-type]  # any DialogueEngine
        await world.standin.send_dm(slack_tests.FAN, "/forget-me confirm")
        [reply] = await world.sent_to(world.dm(), contains=FAILED)
        assert reply.method == "chat.postMessage"
        await world.standin.send_command("/forget-me", "confirm", slack_tests.FAN, world.dm())
        answer = await world.standin.wait_for_sent(lambda m: m.method == "response_url" and FAILED in (m.text or ""), timeout=20)
        assert answer[0].response_type == "ephemeral"
        await world.settled()
        assert_logged_once_without_content(caplog, "slack", slack_tests.FAN, failures=2)


async def test_discord_fans_get_an_error_reply_and_a_deferred_command_is_followed_up(
    store: TranscriptStore, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    async with discord_tests.discord_world(ForgetFails(), store) as world:  # type: ignore[arg-type]  # any DialogueEngine
        await world.standin.send_dm(discord_tests.FAN, "/forget-me confirm")
        await world.sent(world.dm(), contains=FAILED)
        await world.standin.click_button(discord_tests.FAN, "forget_me:confirm", None, world.dm(), guild=False)
        followup = await world.sent(kind="followup", contains=FAILED)
        assert followup[-1].ephemeral
        deferred = [m for m in world.standin.sent if m.kind == "interaction_response"]
        assert deferred and deferred[-1].callback_type == 5  # "thinking…", then the follow-up ends it
        await world.settled()
        assert_logged_once_without_content(caplog, "discord", str(discord_tests.FAN), failures=2)


async def test_the_console_answers_with_an_error_and_goes_on(store: TranscriptStore, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    bot = Bot(ForgetFails(), Pseudonymizer(b"funnel-test-pseudonym-key-0123456789ab"), AssistantSettings(), ConversationMemory(1800), store)
    out = io.StringIO()
    await ConsoleConnector(stdin=io.StringIO("/forget-me confirm\nhello\n"), stdout=out, user_id="console-fan").run(bot)
    printed = out.getvalue()
    assert FAILED in printed
    assert "[greet answer]" in printed.split(FAILED, 1)[1]  # the next line was still answered
    assert_logged_once_without_content(caplog, "console", "console-fan", failures=1)


# Failures in the Discord connector around the funnel (before `replies_to`, or in a click's own
# parsing) reach discord.py's `on_error`, whose default logs a traceback and answers nobody.
OUT_OF_RANGE = "<t:99999999999999999999>"  # a timestamp no datetime holds (year > 9999)


def assert_logged_once_by_type(caplog: pytest.LogCaptureFixture, line: str) -> None:
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == [line]
    assert not any(r.exc_info for r in caplog.records if r.levelno >= logging.INFO)  # discord.py's default logs a traceback


async def assert_answered_at_once(world: discord_tests.DiscordWorld) -> None:
    """The interaction's own response (type 4, only the presser sees it), nothing deferred."""
    [answer] = await world.sent(kind="interaction_response", contains=FAILED)
    assert answer.callback_type == 4 and answer.ephemeral
    await world.settled()


async def test_a_discord_message_the_connector_cannot_read_gets_an_error_reply(
    store: TranscriptStore, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.INFO)

    def unreadable(*_args: object, **_kwargs: object) -> str:
        raise OverflowError("a fault injected where the connector reads the message, before the funnel")

    # Fault injection: no known input breaks the reading any more (the input that did is the
    # next test's), and the funnel must hold for the faults nobody has found yet.
    monkeypatch.setattr(discord_connector, "to_plain", unreadable)
    async with discord_tests.discord_world(ForgetFails(), store) as world:  # type: ignore[arg-type]  # any DialogueEngine
        await world.standin.send_dm(discord_tests.FAN, f"{WORDS} now")
        [reply] = await world.sent(world.dm(), contains=FAILED)
        assert reply.kind == "message"
        await world.settled()
        assert_logged_once_by_type(caplog, "handling a discord message event failed: OverflowError")
        shown = [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO]
        assert not any(WORDS in line or str(discord_tests.FAN) in line for line in shown)


async def test_a_discord_timestamp_past_year_9999_is_read_as_typed_and_answered(
    store: TranscriptStore, caplog: pytest.LogCaptureFixture
) -> None:
    """Once the input that broke the connector's reading: `<t:N>` beyond what a date holds."""
    caplog.set_level(logging.INFO)
    async with discord_tests.discord_world(ForgetFails(), store) as world:  # type: ignore[arg-type]  # any DialogueEngine
        await world.standin.send_dm(discord_tests.FAN, f"when is the next episode? {OUT_OF_RANGE}")
        await world.settled()
        shown = [m for m in world.standin.sent if m.channel_id == world.dm()]
        assert shown and not any(FAILED in repr(m) for m in shown)
        assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_a_discord_click_that_fails_before_its_acknowledgement_is_answered_with_an_error(
    store: TranscriptStore, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.INFO)

    async def fails_first(*_args: object, **_kwargs: object) -> None:
        raise ValueError("a fault injected in a click's handling, before anything acknowledged it")

    # Fault injection, as above: the clicks that once broke here (a ticket button without its
    # number) now get their own one-line answer (test_rating_buttons.py), so the response is
    # still the funnel's to give only for faults nobody has found yet.
    monkeypatch.setattr(discord_connector.DiscordConnector, "_rate", fails_first)
    async with discord_tests.discord_world(ForgetFails(), store) as world:  # type: ignore[arg-type]  # any DialogueEngine
        await world.standin.click_button(discord_tests.FAN, "fb:good:token", None, world.dm(), guild=False)
        await assert_answered_at_once(world)
        assert_logged_once_by_type(caplog, "handling a discord interaction event failed: ValueError")


async def test_a_discord_command_this_version_no_longer_has_is_answered_with_an_error(
    store: TranscriptStore, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    async with discord_tests.discord_world(ForgetFails(), store) as world:  # type: ignore[arg-type]  # any DialogueEngine
        # A global command an earlier version registered (this one syncs its commands to the
        # guild): Discord still offers it, and the command tree fails to find it.
        client = world.connector.client
        assert client.application_id is not None
        await client.http.upsert_global_command(client.application_id, {"name": "old-stats", "description": "gone", "type": 1})
        await world.standin.send_slash("old-stats", discord_tests.FAN, guild=False)
        await assert_answered_at_once(world)
        assert_logged_once_by_type(caplog, "handling a discord command event failed: CommandNotFound")



@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)  # a server that becomes unreachable
async def test_a_desk_click_deferred_before_the_database_went_away_is_followed_up(
    database_url: str, caplog: pytest.LogCaptureFixture  # noqa: F811
) -> None:
    """PostgreSQL behind a loopback proxy the test cuts: the desk defers the click, then cannot
    look the ticket up; the presser is told at once instead of watching "thinking…"."""
    caplog.set_level(logging.INFO)
    real = make_url(database_url)
    proxy = Proxy(real.host or "127.0.0.1", real.port or 5432)
    store = TranscriptStore.open(str(real.set(host="127.0.0.1", port=proxy.port)), None, MasterKeys.parse(MasterKeys.generate()))
    try:
        async with discord_tests.discord_world(ForgetFails(), store) as world:  # type: ignore[arg-type]  # any DialogueEngine
            proxy.cut()
            await world.standin.click_button(discord_tests.MODERATOR, "ticket:claim:1", None, discord_tests.DESK_ID)
            followup = await world.sent(kind="followup", contains=STORE_DOWN_TEXT.split(".")[0])
            assert followup[-1].ephemeral
            deferred = [m for m in world.standin.sent if m.kind == "interaction_response"]
            assert [m.callback_type for m in deferred] == [5]  # "thinking…", ended by the follow-up
            assert_logged_once_by_type(caplog, "handling a discord interaction event failed: StoreUnavailable")
            proxy.restore()
    finally:
        await store.aclose()
        proxy.close()
