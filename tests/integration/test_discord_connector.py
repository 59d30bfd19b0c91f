"""The Discord connector end to end: the real discord.py client, the real trained model and a
real SQLite store, against the local Discord stand-in (and the Slack one for a Slack desk)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from typing import Optional

import pytest

from bot.config import AssistantSettings, DiscordSettings, HandoffSettings, PrivacySettings, SlackSettings
from bot.conversation import ConversationMemory
from bot.core import Bot
from bot.engine.remote import ModelServerEngine
from bot.messages import Address, Kind, Outgoing
from bot.privacy.pseudonym import Pseudonymizer
from bot.privacy.store import TranscriptStore
from connectors.discord_connector import DiscordConnector
from connectors.router import Router
from connectors.slack_connector import SlackConnector, SlackTokens
from standins.discord import DiscordStandIn, SentMessage, point_discord_at
from standins.slack import SlackStandIn

TOKEN = "discord-test-token"
FAN, OTHER_FAN, MODERATOR, OUTSIDER = 4242, 4243, 4343, 4444
MOD_ROLE, DESK_ID = 777, 1300000000000000001
KEY = b"discord-test-pseudonym-key-0123456789abcdef"


class DiscordWorld:
    def __init__(self, standin: DiscordStandIn, connector: DiscordConnector, bot: Bot, router: Router) -> None:
        self.standin = standin
        self.connector = connector
        self.bot = bot
        self.router = router

    def dm(self, user: int = FAN) -> int:
        return self.standin.dm_channel_id(user)

    async def sent(self, channel: Optional[int] = None, count: int = 1, contains: str = "", kind: Optional[str] = None) -> list[SentMessage]:
        def match(message: SentMessage) -> bool:
            return (
                (channel is None or message.channel_id == channel)
                and contains in (message.content or "")
                and (kind is None or message.kind == kind)
            )

        return await self.standin.wait_for_sent(match, count=count, timeout=20)

    async def settled(self, seconds: float = 0.3) -> None:
        await asyncio.sleep(seconds)
        await self.bot.drain()


@contextlib.asynccontextmanager
async def discord_world(
    engine: ModelServerEngine, store: TranscriptStore, desk: Optional[str] = "discord", router: Optional[Router] = None,
    moderators: tuple[str, ...] = (), privacy: Optional[PrivacySettings] = None,
) -> AsyncIterator[DiscordWorld]:
    async with DiscordStandIn(token=TOKEN) as standin:
        standin.add_role(MOD_ROLE, "moderators")
        standin.add_channel(DESK_ID, "mod-desk")
        for user, name, roles in ((FAN, "fan", []), (OTHER_FAN, "fan2", []), (MODERATOR, "Robin", [MOD_ROLE]), (OUTSIDER, "outsider", [])):
            standin.add_member(user, name, roles=roles)
        restore = point_discord_at(standin.api_base, standin.gateway_url)
        settings = DiscordSettings(
            api_base_url=standin.api_base, gateway_url=standin.gateway_url, guild_id=str(standin.guild_id), moderator_role=str(MOD_ROLE)
        )
        router = router or Router()
        connector = DiscordConnector(settings, TOKEN, router, str(DESK_ID) if desk == "discord" else None, guild_ready_timeout=0.1)
        router.add_platform("discord", connector)
        if desk == "discord":
            router.desk = connector.desk
        handoff = HandoffSettings(desk=f"discord:{DESK_ID}" if desk == "discord" else "slack:CDESK", moderators=moderators)
        bot = Bot(engine, Pseudonymizer(KEY), AssistantSettings(), ConversationMemory(1800), store, handoff=handoff, privacy=privacy)
        task = asyncio.create_task(connector.run(bot))
        try:
            done, _ = await asyncio.wait({task, asyncio.create_task(connector.ready.wait())}, timeout=15, return_when=asyncio.FIRST_COMPLETED)
            if task in done:
                task.result()
            assert connector.ready.is_set()
            yield DiscordWorld(standin, connector, bot, router)
        finally:
            await connector.aclose()
            with contextlib.suppress(asyncio.CancelledError, asyncio.TimeoutError):
                await asyncio.wait_for(task, 10)
            await bot.drain()
            restore()


@pytest.fixture
async def world(model_engine: ModelServerEngine, store: TranscriptStore) -> AsyncIterator[DiscordWorld]:
    async with discord_world(model_engine, store) as running:
        yield running


async def test_first_dm_gets_the_disclosure_first_as_replies_without_pings(world: DiscordWorld) -> None:
    message_id = await world.standin.send_dm(FAN, "how do I cancel my subscription?")
    disclosure, answer = await world.sent(world.dm(), count=2)
    assert disclosure.content.startswith("-# AI assistant · automated reply\n") and "not a human" in disclosure.content
    assert "cancel" in answer.content.lower()
    for message in (disclosure, answer):
        assert message.message_reference["message_id"] == str(message_id) or int(message.message_reference["message_id"]) == message_id
        assert message.allowed_mentions["parse"] == []
    assert world.standin.synced  # slash commands were synced at start
    assert {"human", "forget-me", "my-data", "privacy", "why"} <= set(world.standin.commands)


async def test_a_mention_in_a_guild_channel_is_answered_there(world: DiscordWorld) -> None:
    channel = world.standin.channel_id
    await world.standin.send_guild_message(FAN, channel, "my stream keeps buffering", mention_bot=True)
    replies = await world.sent(channel, count=2)
    assert all(m.message_reference is not None for m in replies)
    await world.standin.send_guild_message(OTHER_FAN, channel, "just chatting, not to the bot")
    await world.settled()
    assert len([m for m in world.standin.sent if m.channel_id == channel]) == 2


async def test_slash_commands_answer_ephemerally(world: DiscordWorld) -> None:
    await world.standin.send_slash("privacy", FAN)
    notice = await world.sent(kind="followup", contains="keep")
    assert notice[-1].ephemeral
    deferred = [m for m in world.standin.sent if m.kind == "interaction_response"]
    assert deferred and deferred[0].callback_type == 5 and deferred[0].ephemeral
    await world.standin.send_slash("my-data", FAN)
    export = await world.sent(kind="followup", contains="turns")
    assert export[-1].ephemeral
    assert not [m for m in world.standin.sent if m.kind == "message"]  # nothing in any channel


async def test_forget_me_with_button_confirmation(world: DiscordWorld) -> None:
    await world.standin.send_dm(FAN, "my email is fan@example.com and I can't log in")
    await world.sent(world.dm(), count=2)
    await world.bot.drain()
    await world.standin.send_slash("forget-me", FAN)
    request = await world.sent(kind="followup", contains="/forget-me confirm")
    custom_ids = [c["custom_id"] for row in request[-1].components for c in row["components"]]
    assert custom_ids == ["forget_me:confirm", "forget_me:cancel"]
    await world.standin.click_button(FAN, "forget_me:confirm", request[-1].message_id, world.dm(), guild=False)
    done = await world.sent(kind="followup", contains="erased")
    assert done[-1].ephemeral
    await world.bot.drain()
    export = await world.bot._store.export(Pseudonymizer(KEY).fan("discord", str(FAN)), "test")  # noqa: SLF001
    assert export["turns"] == []


async def test_human_then_a_moderator_works_the_ticket_thread(world: DiscordWorld) -> None:
    await world.standin.send_slash("human", FAN)
    await world.sent(kind="followup", contains="ticket #")
    ticket = (await world.sent(DESK_ID, contains="Ticket #"))[0]
    assert str(FAN) not in ticket.content and "fan" not in ticket.content.split("\n")[0].split("·")[0]
    custom_ids = [c["custom_id"] for row in ticket.components for c in row["components"]]
    assert custom_ids == ["ticket:claim:1", "ticket:resolve:1"]
    for _ in range(200):
        if world.standin.threads:
            break
        await asyncio.sleep(0.05)
    assert world.standin.threads, "a thread was opened for the ticket"
    thread_id = int(world.standin.threads[-1]["id"])

    # A non-moderator pressing Claim is refused, only to them.
    await world.standin.click_button(OUTSIDER, "ticket:claim:1", ticket.message_id, DESK_ID)
    refusal = await world.sent(kind="followup", contains="Only moderators")
    assert refusal[-1].ephemeral

    await world.standin.send_dm(FAN, "I was charged twice")
    await world.sent(thread_id, contains="charged twice")

    await world.standin.click_button(MODERATOR, "ticket:claim:1", ticket.message_id, DESK_ID)
    joined = await world.sent(world.dm(), contains="Robin")
    assert "human moderator" in joined[-1].content and str(MODERATOR) not in joined[-1].content
    await world.standin.send_guild_message(MODERATOR, thread_id, "Hi, I'll refund the second charge.")
    reply = await world.sent(world.dm(), contains="refund the second charge")
    assert reply[-1].content.startswith("-# Human moderator")
    await world.standin.send_guild_message(MODERATOR, thread_id, "!resolve")
    await world.sent(world.dm(), contains="back with the AI assistant")


async def test_a_dropped_gateway_resumes_without_lost_or_duplicate_replies(world: DiscordWorld) -> None:
    await world.standin.send_dm(FAN, "hi")
    await world.sent(world.dm(), count=2)
    await world.standin.drop_gateway(4000, hold=True)
    message = world.standin.send_dm(FAN, "how do I reset my password?")  # dispatched while down
    pending = asyncio.create_task(message)
    await asyncio.sleep(0.3)
    world.standin.release_gateway()
    await pending
    await world.sent(world.dm(), count=3)
    await world.settled(1.0)
    assert world.standin.resumes >= 1 and world.standin.identifies == 1
    assert len([m for m in world.standin.sent if m.channel_id == world.dm()]) == 3


async def test_a_rate_limit_is_waited_out(world: DiscordWorld) -> None:
    world.standin.rate_limit(r"/channels/\d+/messages", times=1, retry_after=0.2)
    await world.standin.send_dm(FAN, "hi")
    await world.sent(world.dm(), count=2)
    assert world.standin.rate_limited == 1


async def test_long_replies_are_split_and_closed_dms_fall_back(world: DiscordWorld) -> None:
    # A long moderator reply is split (a long private result goes as a file: test_long_results.py).
    await world.connector.send_to(Address("discord", str(FAN), "dm"), Outgoing(Kind.MODERATOR_REPLY, "word " * 1000, from_ai=False))
    pieces = await world.sent(world.dm(), count=3)
    assert all(len(p.content) <= 2000 for p in pieces)
    # DMs closed: a moderator's message goes out through the fan's latest slash command.
    world.standin.close_dms(OTHER_FAN)
    await world.standin.send_slash("why", OTHER_FAN)
    await world.sent(kind="followup", contains="explain")
    await world.connector.send_to(Address("discord", str(OTHER_FAN), "dm"), Outgoing(Kind.MODERATOR_REPLY, "are you still there?", from_ai=False))
    fallback = await world.sent(kind="followup", contains="are you still there?")
    assert fallback[-1].ephemeral


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_a_discord_fans_ticket_worked_from_a_slack_desk(model_engine: ModelServerEngine, store: TranscriptStore) -> None:
    async with SlackStandIn(bot_token="xoxb-test", app_token="xapp-test", signing_secret="secret") as slack_standin:
        slack_standin.add_user("UMOD1", "Sam Slack")
        slack_standin.add_channel("CDESK", members=["UMOD1", "UBOT"])
        router = Router()
        slack = SlackConnector(
            SlackSettings(api_base_url=slack_standin.api_base_url), SlackTokens("xoxb-test", "xapp-test"), router, "CDESK", ping_interval=1.0
        )
        router.add_platform("slack", slack)
        router.desk = slack.desk
        async with discord_world(model_engine, store, desk="slack", router=router) as world:
            slack_task = asyncio.create_task(slack.run(world.bot))
            await slack_standin.wait_for_socket(10)
            try:
                await world.standin.send_dm(FAN, "/human")
                await world.sent(world.dm(), contains="ticket #")
                packet = (await slack_standin.wait_for_sent(lambda m: m.channel == "CDESK" and "Ticket #" in (m.text or ""), timeout=20))[0]
                assert "fan on discord" in packet.text
                await slack_standin.click_button("UMOD1", "ticket_claim", "1", "CDESK", packet.ts)
                await world.sent(world.dm(), contains="Sam Slack")
                await slack_standin.send_channel_message("UMOD1", "CDESK", "Hello from Slack!", thread_ts=packet.ts)
                reply = await world.sent(world.dm(), contains="Hello from Slack!")
                assert reply[-1].content.startswith("-# Human moderator")
                await world.standin.send_dm(FAN, "thanks, it was a double charge")
                await slack_standin.wait_for_sent(lambda m: m.thread_ts == packet.ts and "double charge" in (m.text or ""), timeout=20)
            finally:
                await slack.aclose()
                await asyncio.wait_for(slack_task, 10)


async def test_a_refused_token_stops_start_up_with_one_line(bot: Bot) -> None:
    async with DiscordStandIn(token=TOKEN) as standin:
        restore = point_discord_at(standin.api_base, standin.gateway_url)
        try:
            settings = DiscordSettings(api_base_url=standin.api_base, gateway_url=standin.gateway_url)
            connector = DiscordConnector(settings, "wrong-token", Router())
            from connectors.base import ConnectorError

            with pytest.raises(ConnectorError, match="DISCORD_TOKEN") as raised:
                await connector.run(bot)
            assert "\n" not in str(raised.value) and "wrong-token" not in str(raised.value)
            await connector.aclose()
        finally:
            restore()


async def test_a_restart_mid_handoff_keeps_the_ticket_thread_working(model_engine: ModelServerEngine, store: TranscriptStore) -> None:
    """A new process finds the ticket from the thread's name; the fan stays with the human."""
    async with discord_world(model_engine, store) as world:
        await world.standin.send_slash("human", FAN)
        ticket = (await world.sent(DESK_ID, contains="Ticket #"))[0]
        await world.standin.click_button(MODERATOR, "ticket:claim:1", ticket.message_id, DESK_ID)
        await world.sent(world.dm(), contains="Robin")
        thread_id = int(world.standin.threads[-1]["id"])
        await world.connector.aclose()
        await world.bot.drain()

        router = Router()
        settings = DiscordSettings(
            api_base_url=world.standin.api_base, gateway_url=world.standin.gateway_url,
            guild_id=str(world.standin.guild_id), moderator_role=str(MOD_ROLE),
        )
        restarted = DiscordConnector(settings, TOKEN, router, str(DESK_ID), guild_ready_timeout=0.1)
        router.add_platform("discord", restarted)
        router.desk = restarted.desk
        bot = Bot(model_engine, Pseudonymizer(KEY), AssistantSettings(), ConversationMemory(1800), store, handoff=HandoffSettings(desk=f"discord:{DESK_ID}"))
        task = asyncio.create_task(restarted.run(bot))
        try:
            await asyncio.wait_for(restarted.ready.wait(), 15)
            await world.standin.send_guild_message(MODERATOR, thread_id, "Still here after the restart")
            await world.sent(world.dm(), contains="Still here after the restart")
            await world.standin.send_dm(FAN, "great, thanks")
            await world.sent(thread_id, contains="great, thanks")
        finally:
            await restarted.aclose()
            with contextlib.suppress(asyncio.CancelledError, asyncio.TimeoutError):
                await asyncio.wait_for(task, 10)
            await bot.drain()
