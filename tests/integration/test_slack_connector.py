"""The Slack connector end to end: the real slack-bolt app, the real trained model, a real
SQLite store, against the local Slack stand-in, in Socket Mode and in HTTP mode."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator
from typing import Any, Optional

import pytest

from bot.config import AssistantSettings, HandoffSettings, SlackSettings
from bot.conversation import ConversationMemory
from bot.core import Bot
from bot.engine.remote import ModelServerEngine
from bot.handoff.desk import ConsoleDesk
from bot.messages import Kind, Outgoing
from bot.privacy.pseudonym import Pseudonymizer
from bot.privacy.store import TranscriptStore
from connectors.router import Router
from connectors.slack_connector import SlackConnector, SlackTokens
from standins.slack import SentMessage, SlackStandIn

BOT_TOKEN, APP_TOKEN, SECRET = "xoxb-test", "xapp-test", "test-signing-secret"
FAN, OTHER_FAN, MODERATOR, OUTSIDER = "UFAN1", "UFAN2", "UMOD1", "UOUT1"
DESK, GENERAL = "CDESK", "CGENERAL"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class SlackWorld:
    """A stand-in Slack, a bot, and the connector serving it; `desk` picks where tickets go."""

    def __init__(self, standin: SlackStandIn, connector: SlackConnector, bot: Bot, router: Router) -> None:
        self.standin = standin
        self.connector = connector
        self.bot = bot
        self.router = router

    def dm(self, user: str = FAN) -> str:
        return self.standin.dm_channel(user)

    async def sent_to(self, channel: str, count: int = 1, contains: str = "", method: Optional[str] = None) -> list[SentMessage]:
        def match(message: SentMessage) -> bool:
            return message.channel == channel and contains in (message.text or "") and (method is None or message.method == method)

        return await self.standin.wait_for_sent(match, count=count, timeout=20)

    async def settled(self, seconds: float = 0.3) -> None:
        """Lets in-flight listeners finish (to check that nothing *more* was sent)."""
        await asyncio.sleep(seconds)
        await self.bot.drain()


async def start_world(
    mode: str, engine: ModelServerEngine, store: TranscriptStore, desk: str = f"slack:{DESK}", **bot_settings: Any
) -> AsyncIterator[SlackWorld]:
    standin = SlackStandIn(bot_token=BOT_TOKEN, app_token=APP_TOKEN, signing_secret=SECRET, mode=mode)
    await standin.start()
    for user, name in ((FAN, "fan one"), (OTHER_FAN, "fan two"), (MODERATOR, "Sam Mod"), (OUTSIDER, "not a mod")):
        standin.add_user(user, name)
    standin.add_channel(DESK, members=[MODERATOR, "UBOT"])
    standin.add_channel(GENERAL, members=[FAN, OTHER_FAN, MODERATOR, OUTSIDER, "UBOT"])
    settings = SlackSettings(mode=mode, http_port=free_port(), api_base_url=standin.api_base_url, rate_limit_retries=2)
    router = Router()
    desk_channel = desk.partition(":")[2] if desk.startswith("slack:") else None
    connector = SlackConnector(settings, SlackTokens(BOT_TOKEN, APP_TOKEN, SECRET), router, desk_channel, http_host="127.0.0.1", ping_interval=1.0)
    router.add_platform("slack", connector)
    router.desk = connector.desk
    handoff = HandoffSettings(desk=desk, moderators=bot_settings.pop("moderators", ()))
    bot = Bot(engine, Pseudonymizer(b"slack-test-pseudonym-key-0123456789abcdef"), AssistantSettings(), ConversationMemory(1800), store,
              handoff=handoff, privacy=bot_settings.pop("privacy", None))
    task = asyncio.create_task(connector.run(bot))
    if mode == "socket":
        await standin.wait_for_socket(10)
    else:
        for _ in range(200):
            if connector.http_port or task.done():
                break
            await asyncio.sleep(0.02)
        task.done() and task.result()
        standin.http_target = f"http://127.0.0.1:{settings.http_port}{settings.http_path}"
    try:
        yield SlackWorld(standin, connector, bot, router)
    finally:
        await connector.aclose()
        await asyncio.wait_for(task, 10)
        await bot.drain()
        await standin.aclose()


@pytest.fixture(params=["socket", "http"])
async def world(request: pytest.FixtureRequest, model_engine: ModelServerEngine, store: TranscriptStore) -> AsyncIterator[SlackWorld]:
    async for running in start_world(request.param, model_engine, store):
        yield running


async def test_first_dm_gets_the_disclosure_first_then_an_faq_answer(world: SlackWorld) -> None:
    delivery = await world.standin.send_dm(FAN, "how do I cancel my subscription?")
    assert delivery.acked
    first, answer = await world.sent_to(world.dm(), count=2)
    assert "not a human" in first.text and "automated AI assistant" in first.text
    assert "cancel" in answer.text.lower() and answer.method == "chat.postMessage"
    for message in (first, answer):
        assert message.blocks[-1]["elements"][0]["text"] == "AI assistant · automated reply"
    await world.standin.send_dm(FAN, "when is the next episode released?")
    await world.sent_to(world.dm(), count=3)
    await world.settled()
    assert sum("not a human" in (m.text or "") for m in world.standin.sent) == 1  # disclosed once


async def test_a_mention_is_answered_in_its_thread_and_private_results_stay_ephemeral(world: SlackWorld) -> None:
    await world.standin.send_mention(FAN, GENERAL, "my stream keeps buffering", thread_ts="1700000000.000001")
    replies = await world.sent_to(GENERAL, count=2)
    assert all(m.thread_ts == "1700000000.000001" and m.method == "chat.postMessage" for m in replies)
    await world.standin.send_mention(FAN, GENERAL, "what data do you have on me?")
    private = await world.standin.wait_for_sent(lambda m: m.method == "chat.postEphemeral", timeout=20)
    assert private[0].user == FAN and private[0].channel == GENERAL
    await world.settled()
    public = [m for m in world.standin.sent if m.channel == GENERAL and m.method == "chat.postMessage"]
    assert not any('"turns"' in (m.text or "") or "fan_pseudonym" in (m.text or "") for m in public)


async def test_my_data_slash_command_is_acked_and_answered_only_to_the_fan(world: SlackWorld) -> None:
    await world.standin.send_dm(FAN, "hello there")
    await world.sent_to(world.dm(), count=2)
    delivery = await world.standin.send_command("/my-data", "", FAN, GENERAL)
    assert delivery.acked and delivery.latency_ms is not None
    export = await world.standin.wait_for_sent(lambda m: m.method == "response_url" and "turns" in (m.text or ""), timeout=20)
    assert export[0].response_type == "ephemeral" and export[0].user == FAN
    await world.settled()
    assert not [m for m in world.standin.sent if m.channel == GENERAL and m.method != "response_url"]


async def test_forget_me_asks_with_buttons_and_erases_on_confirm(world: SlackWorld) -> None:
    await world.standin.send_dm(FAN, "my email is fan@example.com and I can't log in")
    await world.sent_to(world.dm(), count=2)
    await world.bot.drain()
    await world.standin.send_command("/forget-me", "", FAN, world.dm())
    request = await world.standin.wait_for_sent(lambda m: m.method == "response_url" and bool(m.blocks), timeout=20)
    actions = [e for b in request[0].blocks if b["type"] == "actions" for e in b["elements"]]
    assert [a["action_id"] for a in actions] == ["forget_me_confirm", "forget_me_cancel"]
    click = await world.standin.click_button(FAN, "forget_me_confirm", "confirm", world.dm(), "1700000000.000009")
    assert click.acked
    done = await world.standin.wait_for_sent(lambda m: m.method == "response_url" and "erased" in (m.text or "").lower(), timeout=20)
    assert done[0].response_type == "ephemeral"
    await world.bot.drain()
    fan = Pseudonymizer(b"slack-test-pseudonym-key-0123456789abcdef").fan("slack", FAN)
    export = await world.bot._store.export(fan, "test")  # noqa: SLF001 - reading the real store
    assert export["turns"] == []


async def test_human_then_a_moderator_claims_and_replies_in_the_desk_thread(world: SlackWorld) -> None:
    await world.standin.send_command("/human", "", FAN, GENERAL)
    started = await world.standin.wait_for_sent(lambda m: m.method == "response_url" and "ticket #" in (m.text or ""), timeout=20)
    assert started[0].response_type == "ephemeral"
    ticket_message = (await world.sent_to(DESK, contains="Ticket #"))[0]
    buttons = [e for b in ticket_message.blocks if b["type"] == "actions" for e in b["elements"]]
    assert [b["action_id"] for b in buttons] == ["ticket_claim", "ticket_resolve"]
    assert FAN not in ticket_message.text  # no raw identity at the desk

    # Someone outside the desk channel is refused, privately.
    await world.standin.click_button(OUTSIDER, "ticket_claim", buttons[0]["value"], DESK, ticket_message.ts)
    refusal = await world.standin.wait_for_sent(lambda m: m.user == OUTSIDER, timeout=20)
    assert "moderators" in refusal[0].text and refusal[0].response_type == "ephemeral"

    # The fan writes while waiting: relayed into the ticket's thread.
    await world.standin.send_dm(FAN, "I was charged twice this month")
    relay = await world.standin.wait_for_sent(lambda m: m.channel == DESK and m.thread_ts == ticket_message.ts and "charged twice" in (m.text or ""), timeout=20)
    assert relay

    await world.standin.click_button(MODERATOR, "ticket_claim", buttons[0]["value"], DESK, ticket_message.ts)
    joined = await world.sent_to(world.dm(), contains="Sam Mod")
    assert "human moderator" in joined[0].text and "UMOD1" not in joined[0].text
    await world.standin.send_channel_message(MODERATOR, DESK, "Hi! I'll refund the second charge.", thread_ts=ticket_message.ts)
    reply = await world.sent_to(world.dm(), contains="refund the second charge")
    assert reply[0].blocks[-1]["elements"][0]["text"].startswith("Human moderator")

    await world.standin.send_channel_message(MODERATOR, DESK, "!resolve", thread_ts=ticket_message.ts)
    await world.sent_to(world.dm(), contains="back with the AI assistant")
    await world.standin.send_channel_message(MODERATOR, DESK, "one more thing", thread_ts=ticket_message.ts)
    await world.settled()
    assert not [m for m in world.standin.sent if "one more thing" in (m.text or "")]  # a closed thread relays nothing
    before = len([m for m in world.standin.sent if m.channel == world.dm()])
    await world.standin.send_dm(FAN, "when is the next episode released?")
    answer = (await world.sent_to(world.dm(), count=before + 1))[-1]
    assert answer.text.startswith("AI assistant · automated reply") and "release" in answer.text.lower()
    assert not [m for m in world.standin.sent if m.channel == DESK and "next episode" in (m.text or "")]  # not relayed


async def test_a_redelivered_event_gets_one_reply(world: SlackWorld) -> None:
    first = await world.standin.send_dm(FAN, "how do I reset my password?")
    await world.sent_to(world.dm(), count=2)
    again = await world.standin.redeliver(first)
    assert again.acked
    await world.settled(1.0)
    assert len([m for m in world.standin.sent if m.channel == world.dm()]) == 2


async def test_bots_and_our_own_echoes_are_ignored(world: SlackWorld) -> None:
    await world.standin.send_channel_message(None, world.dm(), "I am another bot", bot_id="BOTHER")
    await world.standin.send_channel_message(None, world.dm(), "our own echo", bot_id="BBOT")
    await world.standin.send_channel_message(FAN, world.dm(), "an edit", subtype="message_changed")
    await world.settled(0.5)
    assert world.standin.sent == []


async def test_a_rate_limit_is_waited_out(world: SlackWorld) -> None:
    world.standin.rate_limit("chat.postMessage", times=1, retry_after=0)
    await world.standin.send_dm(FAN, "hi")
    await world.sent_to(world.dm(), count=2)
    assert world.standin.rate_limited == ["chat.postMessage"]


async def test_a_long_reply_is_split_into_messages_slack_accepts(world: SlackWorld) -> None:
    long = Outgoing(Kind.DATA_EXPORT, "x " * 40_000)
    await world.connector.send_to(__import__("bot.messages", fromlist=["Address"]).Address("slack", FAN, "im"), long)
    pieces = await world.sent_to(world.dm(), count=2)
    assert all(len(m.text) <= 40_000 for m in pieces)
    assert all(len(b["text"]["text"]) <= 3000 for m in pieces for b in m.blocks if b["type"] == "section")


async def test_http_mode_refuses_forged_and_stale_requests_without_logging_content(
    model_engine: ModelServerEngine, store: TranscriptStore, caplog: pytest.LogCaptureFixture
) -> None:
    async for world in start_world("http", model_engine, store):
        caplog.set_level(logging.INFO)
        forged = await world.standin.send_dm(FAN, "secret text 1", signature="v0=" + "0" * 64)
        stale = await world.standin.send_dm(FAN, "secret text 2", timestamp="1000000000")
        assert forged.status == 401 and stale.status == 401
        await world.settled()
        assert world.standin.sent == []
        assert "refused a Slack request" in caplog.text and "secret text" not in caplog.text


async def test_socket_mode_reconnects_after_a_drop(model_engine: ModelServerEngine, store: TranscriptStore) -> None:
    async for world in start_world("socket", model_engine, store):
        connections = world.standin.socket_connections
        await world.standin.drop_socket()
        await world.standin.send_dm(FAN, "hi again")  # waits for the reconnect, then delivers
        await world.sent_to(world.dm(), count=2)
        assert world.standin.socket_connections == connections + 1


async def test_a_slack_fan_ticket_on_the_console_desk(model_engine: ModelServerEngine, store: TranscriptStore) -> None:
    async for world in start_world("socket", model_engine, store, desk="console", moderators=("mod1",)):
        printed: list[Outgoing] = []

        def write(message: Outgoing) -> None:
            printed.append(message)

        world.router.desk = ConsoleDesk(write)
        await world.standin.send_dm(FAN, "/human")
        await world.sent_to(world.dm(), contains="ticket #")
        for _ in range(100):
            if printed:
                break
            await asyncio.sleep(0.05)
        assert printed[0].kind is Kind.HANDOFF_TICKET
        from bot.handoff.actions import console_action

        moderators = world.bot.handoff.settings.moderators
        await world.router.deliver(await world.bot.moderate(console_action("mod1", "/claim Robin", None, moderators)))
        await world.router.deliver(await world.bot.moderate(console_action("mod1", "Hello from the console desk", None, moderators)))
        await world.sent_to(world.dm(), contains="Hello from the console desk")


async def test_a_refused_token_stops_start_up_with_one_line(bot: Bot) -> None:
    async with SlackStandIn(bot_token=BOT_TOKEN, app_token=APP_TOKEN) as standin:
        settings = SlackSettings(api_base_url=standin.api_base_url)
        connector = SlackConnector(settings, SlackTokens("xoxb-wrong", APP_TOKEN), Router())
        from connectors.base import ConnectorError

        with pytest.raises(ConnectorError, match="SLACK_BOT_TOKEN") as raised:
            await connector.run(bot)
        assert "\n" not in str(raised.value) and "xoxb-wrong" not in str(raised.value)
        await connector.aclose()


async def test_a_restart_mid_handoff_keeps_the_desk_thread_working(model_engine: ModelServerEngine, store: TranscriptStore) -> None:
    """A new process knows nothing of the desk's threads: it finds the ticket from the
    thread's first message, and the fan stays with the human."""
    async for world in start_world("socket", model_engine, store):
        await world.standin.send_command("/human", "", FAN, GENERAL)
        ticket_message = (await world.sent_to(DESK, contains="Ticket #"))[0]
        await world.standin.click_button(MODERATOR, "ticket_claim", "1", DESK, ticket_message.ts)
        await world.sent_to(world.dm(), contains="Sam Mod")
        await world.connector.aclose()
        await world.bot.drain()

        router = Router()
        settings = SlackSettings(api_base_url=world.standin.api_base_url)
        restarted = SlackConnector(settings, SlackTokens(BOT_TOKEN, APP_TOKEN, SECRET), router, DESK, ping_interval=1.0)
        router.add_platform("slack", restarted)
        router.desk = restarted.desk
        bot = Bot(model_engine, Pseudonymizer(b"slack-test-pseudonym-key-0123456789abcdef"), AssistantSettings(), ConversationMemory(1800), store, handoff=HandoffSettings(desk=f"slack:{DESK}"))
        task = asyncio.create_task(restarted.run(bot))
        try:
            await world.standin.wait_for_socket(10)
            await world.standin.send_channel_message(MODERATOR, DESK, "Still here after the restart", thread_ts=ticket_message.ts)
            await world.sent_to(world.dm(), contains="Still here after the restart")
            await world.standin.send_dm(FAN, "great, thanks")
            await world.standin.wait_for_sent(lambda m: m.thread_ts == ticket_message.ts and "great, thanks" in (m.text or ""), timeout=20)
        finally:
            await restarted.aclose()
            await asyncio.wait_for(task, 10)
            await bot.drain()
