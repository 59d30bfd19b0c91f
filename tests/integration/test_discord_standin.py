"""The Discord stand-in against the real discord.py client (no network, no Rasa model).

Each test starts a real `discord.Client` with an `app_commands.CommandTree`, pointed at a
fresh stand-in through `point_discord_at`, and plays a fan through the stand-in's helpers.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Optional

import aiohttp
import discord
import discord.gateway
import discord.http
import pytest
from discord import app_commands

from standins.discord import (
    DEFAULT_CHANNEL_ID,
    DEFAULT_GUILD_ID,
    DiscordStandIn,
    point_discord_at,
)

TOKEN = "discord-test-token"
FAN = 4242
MODERATOR = 4343
LONER = 4444  # not in the guild: DMs only
MOD_ROLE = 777


def fan_intents(*, message_content: bool = True) -> discord.Intents:
    intents = discord.Intents.none()
    intents.guilds = True
    intents.guild_messages = True
    intents.dm_messages = True
    intents.message_content = message_content
    return intents


class TicketView(discord.ui.View):
    """A persistent view: fixed custom_id, no timeout, registered with client.add_view."""

    def __init__(self, clicks: list[discord.Interaction]) -> None:
        super().__init__(timeout=None)
        self.clicks = clicks

    @discord.ui.button(label="Claim", custom_id="ticket:claim", style=discord.ButtonStyle.primary)
    async def claim(self, interaction: discord.Interaction, button: discord.ui.Button) -> None:
        self.clicks.append(interaction)
        await interaction.response.send_message("claimed", ephemeral=True)


class FanBot(discord.Client):
    def __init__(self, intents: Optional[discord.Intents] = None) -> None:
        super().__init__(intents=intents or fan_intents(), guild_ready_timeout=0.1)
        self.tree = app_commands.CommandTree(self)
        self.inbox: asyncio.Queue[discord.Message] = asyncio.Queue()
        self.clicks: list[discord.Interaction] = []
        self.commands_seen: list[discord.Interaction] = []
        self.ready = asyncio.Event()
        self.resumed = asyncio.Event()

        @self.tree.command(name="privacy", description="What the assistant stores")
        async def privacy(interaction: discord.Interaction) -> None:
            self.commands_seen.append(interaction)
            await interaction.response.send_message("We keep minimized, encrypted transcripts.", ephemeral=True)

        @self.tree.command(name="human", description="Talk to a person")
        async def human(interaction: discord.Interaction) -> None:
            self.commands_seen.append(interaction)
            await interaction.response.defer(ephemeral=True, thinking=True)
            await interaction.followup.send("A moderator will join you shortly.", ephemeral=True)

        @self.tree.command(name="why", description="Explain the last answer")
        @app_commands.describe(topic="What to explain")
        async def why(interaction: discord.Interaction, topic: str) -> None:
            self.commands_seen.append(interaction)
            await interaction.response.send_message(f"explaining {topic}")

    async def setup_hook(self) -> None:
        self.add_view(TicketView(self.clicks))
        guild = discord.Object(DEFAULT_GUILD_ID)
        self.tree.copy_global_to(guild=guild)
        await self.tree.sync(guild=guild)
        await self.tree.sync()  # global too: DMs only see global commands

    async def on_ready(self) -> None:
        self.ready.set()

    async def on_resumed(self) -> None:
        self.resumed.set()

    async def on_message(self, message: discord.Message) -> None:
        assert self.user is not None
        if message.author.id != self.user.id:  # the bot's own messages come back too
            await self.inbox.put(message)

    async def next_message(self, timeout: float = 5.0) -> discord.Message:
        return await asyncio.wait_for(self.inbox.get(), timeout)


@pytest.fixture
async def standin() -> AsyncIterator[DiscordStandIn]:
    async with DiscordStandIn(token=TOKEN) as stand_in:
        stand_in.add_role(MOD_ROLE, "moderators")
        stand_in.add_member(FAN, "fan")
        stand_in.add_member(MODERATOR, "mod", roles=[MOD_ROLE])
        stand_in.add_user(LONER, "loner")
        with point_discord_at(stand_in.api_base, stand_in.gateway_url):
            yield stand_in


@contextlib.asynccontextmanager
async def running(client: FanBot) -> AsyncIterator[FanBot]:
    task = asyncio.create_task(client.start(TOKEN))
    ready = asyncio.create_task(client.ready.wait())
    try:
        done, _ = await asyncio.wait({task, ready}, timeout=10, return_when=asyncio.FIRST_COMPLETED)
        if task in done:
            task.result()  # raises what stopped the client
        assert client.ready.is_set(), "on_ready did not fire"
        yield client
    finally:
        ready.cancel()
        await client.close()
        with contextlib.suppress(asyncio.CancelledError, asyncio.TimeoutError):
            await asyncio.wait_for(task, 5)


@pytest.fixture
async def bot(standin: DiscordStandIn) -> AsyncIterator[FanBot]:
    async with running(FanBot()) as client:
        yield client


async def eventually(check, timeout: float = 3.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition never became true"
        await asyncio.sleep(0.02)


def test_point_discord_at_restores_both_overrides() -> None:
    base, gateway = discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY
    restore = point_discord_at("http://127.0.0.1:1/api/v10/", "ws://127.0.0.1:1/gateway")
    assert discord.http.Route("GET", "/users/@me").url == "http://127.0.0.1:1/api/v10/users/@me"
    assert str(discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY) == "ws://127.0.0.1:1/gateway"
    restore()
    assert (discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY) == (base, gateway)


async def test_raw_gateway_handshake_and_close_codes(standin: DiscordStandIn) -> None:
    url = standin.gateway_url + "?v=10&encoding=json&compress=zlib-stream"
    async with aiohttp.ClientSession() as http:
        async with http.ws_connect(url) as ws:
            hello = await ws.receive_json()
            assert hello["op"] == 10 and hello["d"]["heartbeat_interval"] == 41250
            await ws.send_json({"op": 1, "d": None})
            assert (await ws.receive_json())["op"] == 11
            await ws.send_json({"op": 2, "d": {"token": "wrong", "intents": 0, "properties": {}}})
            closing = await ws.receive()
            assert (closing.type, closing.data) == (aiohttp.WSMsgType.CLOSE, 4004)

        async with http.ws_connect(url) as ws:
            await ws.receive_json()
            await ws.send_json({"op": 2, "d": {"token": TOKEN, "intents": 1 | 1 << 9, "properties": {}}})
            ready = await ws.receive_json()
            assert (ready["t"], ready["s"]) == ("READY", 1)
            assert ready["d"]["resume_gateway_url"] == standin.gateway_url
            guild = await ws.receive_json()
            assert (guild["t"], guild["s"]) == ("GUILD_CREATE", 2)
            assert str(DEFAULT_GUILD_ID) in {role["id"] for role in guild["d"]["roles"]}  # @everyone
            drop = asyncio.create_task(standin.drop_gateway(4000))
            closing = await ws.receive()
            assert (closing.type, closing.data) == (aiohttp.WSMsgType.CLOSE, 4000)
            await drop


async def test_login_ready_and_guild_cache(standin: DiscordStandIn, bot: FanBot) -> None:
    assert bot.user is not None and bot.user.id == standin.bot_user_id and bot.user.bot
    assert bot.application_id == standin.app_id
    assert standin.identifies == 1 and standin.identified_intents == fan_intents().value
    guild = bot.get_guild(DEFAULT_GUILD_ID)
    assert guild is not None and guild.me is not None
    assert guild.default_role.id == DEFAULT_GUILD_ID
    assert isinstance(guild.get_channel(DEFAULT_CHANNEL_ID), discord.TextChannel)
    assert guild.get_role(MOD_ROLE) is not None
    assert standin.heartbeats >= 1

    # The world can change after READY: the client hears of it (CHANNEL_CREATE here).
    standin.add_channel(555, "support")
    await eventually(lambda: isinstance(bot.get_channel(555), discord.TextChannel))


async def test_wrong_token_is_a_login_failure(standin: DiscordStandIn) -> None:
    client = discord.Client(intents=fan_intents())
    with pytest.raises(discord.LoginFailure):
        await client.login("not-the-token")
    await client.close()


async def test_tree_sync_lands_in_the_stand_in(standin: DiscordStandIn, bot: FanBot) -> None:
    assert standin.synced == [DEFAULT_GUILD_ID, "global"]
    assert {"privacy", "human", "why"} <= set(standin.commands)
    why = standin.commands_in(DEFAULT_GUILD_ID)["why"]
    assert why["guild_id"] == str(DEFAULT_GUILD_ID)
    assert why["options"][0]["name"] == "topic" and why["options"][0]["required"]
    with pytest.raises(LookupError, match="not synced"):
        await standin.send_slash("unknown", FAN)


async def test_dm_reaches_on_message_and_replies_are_recorded(standin: DiscordStandIn, bot: FanBot) -> None:
    message_id = await standin.send_dm(FAN, "my stream keeps buffering")
    message = await bot.next_message()
    assert message.id == message_id and message.guild is None
    assert isinstance(message.channel, discord.DMChannel)
    assert message.content == "my stream keeps buffering" and message.author.id == FAN

    await message.channel.send("Try restarting the app.")
    await message.reply("Still stuck? Type /human.", mention_author=False)
    plain, reply = await standin.wait_for_sent(lambda s: s.channel_id == message.channel.id, count=2)
    assert plain.kind == "message" and plain.message_reference is None
    assert reply.message_reference == {"message_id": message_id, "channel_id": message.channel.id}
    assert reply.allowed_mentions is not None and reply.allowed_mentions["replied_user"] is False
    assert standin.dm_channel_id(FAN) == message.channel.id

    # The connector's own path to a fan: user.send() opens the DM channel over REST.
    user = await bot.fetch_user(LONER)
    sent = await user.send("hello")
    assert sent.channel.id == standin.dm_channel_id(LONER)


async def test_closed_dms_raise_forbidden(standin: DiscordStandIn, bot: FanBot) -> None:
    standin.close_dms(LONER)
    user = await bot.fetch_user(LONER)
    with pytest.raises(discord.Forbidden) as failure:
        await user.send("are you there?")
    assert failure.value.code == 50007


async def test_guild_mention_carries_member_and_mentions(standin: DiscordStandIn, bot: FanBot) -> None:
    await standin.send_guild_message(MODERATOR, DEFAULT_CHANNEL_ID, "need help", mention_bot=True)
    message = await bot.next_message()
    assert isinstance(message.author, discord.Member)
    assert [r.id for r in message.author.roles if not r.is_default()] == [MOD_ROLE]
    assert bot.user is not None and bot.user.mentioned_in(message)
    assert message.content == f"<@{standin.bot_user_id}> need help"

    await standin.send_guild_message(FAN, DEFAULT_CHANNEL_ID, "beep", bot=True)
    assert (await bot.next_message()).author.bot


async def test_without_message_content_intent_guild_text_is_empty(standin: DiscordStandIn) -> None:
    async with running(FanBot(fan_intents(message_content=False))) as client:
        await standin.send_guild_message(FAN, DEFAULT_CHANNEL_ID, "hello everyone")
        assert (await client.next_message()).content == ""
        await standin.send_guild_message(FAN, DEFAULT_CHANNEL_ID, "hi", mention_bot=True)
        assert (await client.next_message()).content.endswith("hi")
        await standin.send_dm(FAN, "dms keep their text")
        assert (await client.next_message()).content == "dms keep their text"


async def test_slash_command_ephemeral_response(standin: DiscordStandIn, bot: FanBot) -> None:
    interaction_id = await standin.send_slash("privacy", FAN)
    [response] = await standin.wait_for_sent(lambda s: s.interaction_id == interaction_id)
    assert response.kind == "interaction_response" and response.callback_type == 4
    assert response.flags == 64 and response.ephemeral
    assert response.content == "We keep minimized, encrypted transcripts."
    interaction = bot.commands_seen[-1]
    assert isinstance(interaction.user, discord.Member) and interaction.channel_id == DEFAULT_CHANNEL_ID

    interaction_id = await standin.send_slash("why", FAN, options={"topic": "billing"})
    [response] = await standin.wait_for_sent(lambda s: s.interaction_id == interaction_id)
    assert response.content == "explaining billing" and not response.ephemeral

    interaction_id = await standin.send_slash("privacy", LONER, guild=False)
    await standin.wait_for_sent(lambda s: s.interaction_id == interaction_id)
    assert bot.commands_seen[-1].guild is None and isinstance(bot.commands_seen[-1].channel, discord.DMChannel)


async def test_slash_command_defer_then_followup(standin: DiscordStandIn, bot: FanBot) -> None:
    interaction_id = await standin.send_slash("human", FAN)
    defer, followup = await standin.wait_for_sent(lambda s: s.interaction_id == interaction_id, count=2)
    assert (defer.kind, defer.callback_type, defer.flags) == ("interaction_response", 5, 64)
    assert followup.kind == "followup" and followup.ephemeral
    assert followup.content == "A moderator will join you shortly."
    assert followup.message_id == defer.message_id  # the follow-up fills in the "thinking..." message


async def test_button_click_reaches_persistent_view(standin: DiscordStandIn, bot: FanBot) -> None:
    channel = bot.get_channel(DEFAULT_CHANNEL_ID)
    assert isinstance(channel, discord.TextChannel)
    ticket = await channel.send("New ticket", view=TicketView(bot.clicks))
    [sent] = await standin.wait_for_sent(lambda s: s.message_id == ticket.id)
    assert sent.components[0]["components"][0]["custom_id"] == "ticket:claim"

    interaction_id = await standin.click_button(MODERATOR, "ticket:claim", ticket.id, DEFAULT_CHANNEL_ID)
    [answer] = await standin.wait_for_sent(lambda s: s.interaction_id == interaction_id)
    assert answer.callback_type == 4 and answer.ephemeral
    clicked = bot.clicks[-1]
    assert clicked.user.id == MODERATOR and clicked.message is not None and clicked.message.id == ticket.id

    # A button on a message from an earlier process: only the persistent view knows it.
    interaction_id = await standin.click_button(FAN, "ticket:claim")
    await standin.wait_for_sent(lambda s: s.interaction_id == interaction_id)
    assert len(bot.clicks) == 2
    with pytest.raises(LookupError):
        await standin.click_button(FAN, "ticket:nope", ticket.id)


async def test_thread_messages_arrive_on_a_thread(standin: DiscordStandIn, bot: FanBot) -> None:
    channel = bot.get_channel(DEFAULT_CHANNEL_ID)
    assert isinstance(channel, discord.TextChannel)
    thread = await channel.create_thread(name="ticket-1", type=discord.ChannelType.public_thread)
    assert [t["id"] for t in standin.threads] == [str(thread.id)]
    await eventually(lambda: bot.get_channel(thread.id) is not None)  # THREAD_CREATE cached it

    await standin.send_guild_message(FAN, thread.id, "hello from the thread")
    message = await bot.next_message()
    assert isinstance(message.channel, discord.Thread) and message.channel.id == thread.id
    assert message.channel.parent_id == DEFAULT_CHANNEL_ID
    await message.channel.send("A moderator is here.")
    [reply] = await standin.wait_for_sent(lambda s: s.channel_id == thread.id)
    assert reply.content == "A moderator is here."

    # A thread started from a message shares the message's id.
    starter = await channel.send("Ticket #2")
    second = await starter.create_thread(name="ticket-2")
    assert second.id == starter.id and second.type is discord.ChannelType.public_thread


@pytest.mark.parametrize("code", [4000, None], ids=["close-4000", "tcp-drop"])
async def test_gateway_drop_resumes_and_delivers_exactly_once(
    standin: DiscordStandIn, bot: FanBot, code: Optional[int]
) -> None:
    await standin.drop_gateway(code, hold=True)
    message_id = await standin.send_dm(FAN, "did you get this?")  # the client is away
    await asyncio.sleep(0.2)
    assert bot.inbox.empty()
    standin.release_gateway()

    message = await bot.next_message()
    assert message.id == message_id
    await asyncio.wait_for(bot.resumed.wait(), 5)
    assert standin.resumes == 1 and standin.identifies == 1
    await message.reply("yes")
    await standin.wait_for_sent(lambda s: s.message_reference is not None)
    await asyncio.sleep(0.2)
    assert bot.inbox.empty()  # no duplicate from the replay


async def test_rate_limited_send_is_retried(standin: DiscordStandIn, bot: FanBot) -> None:
    channel = bot.get_channel(DEFAULT_CHANNEL_ID)
    assert isinstance(channel, discord.TextChannel)
    standin.rate_limit(r"/channels/.*/messages", times=1, retry_after=0.3)
    started = time.monotonic()
    await channel.send("after the limit")
    assert time.monotonic() - started >= 0.3
    assert standin.rate_limited == 1
    [sent] = await standin.wait_for_sent(lambda s: s.content == "after the limit")
    assert sent.kind == "message"
    assert [status for _, path, status in standin.requests if path.endswith("/messages")] == [429, 200]


async def test_control_api_for_trying_the_bot_by_hand(standin: DiscordStandIn, bot: FanBot) -> None:
    async with aiohttp.ClientSession(standin.base_url) as http:
        async with http.post("/_standin/dm", json={"user": 5151, "content": "hi from curl"}) as answer:
            message_id = int((await answer.json())["message_id"])
        message = await bot.next_message()
        assert message.id == message_id and message.content == "hi from curl"
        await message.channel.send("hello, new fan")
        async with http.post("/_standin/slash", json={"user": 5151, "name": "/privacy"}) as answer:
            assert answer.status == 200
        await standin.wait_for_sent(lambda s: s.kind == "interaction_response")
        async with http.get("/_standin/sent") as answer:
            sent = await answer.json()
        assert [s["kind"] for s in sent] == ["message", "interaction_response"]
        async with http.post("/_standin/slash", json={"user": 5151, "name": "nope"}) as answer:
            assert answer.status == 400 and "not synced" in (await answer.json())["error"]


async def test_missing_privileged_intent_closes_with_4014(standin: DiscordStandIn) -> None:
    standin.allowed_intents = 0  # Message Content not enabled in the "developer portal"
    with pytest.raises(discord.PrivilegedIntentsRequired):
        async with running(FanBot()):
            pass


async def test_op7_reconnect_resumes(standin: DiscordStandIn, bot: FanBot) -> None:
    await standin.request_reconnect()
    await asyncio.wait_for(bot.resumed.wait(), 5)
    assert (standin.identifies, standin.resumes) == (1, 1)
    await standin.send_dm(FAN, "still here?")
    assert (await bot.next_message()).content == "still here?"
