"""The stand-ins delete and edit as Slack and Discord do, seen through the real slack-sdk
and discord.py clients (the rules are cited in the stand-ins' docstrings)."""

from __future__ import annotations

import discord
import pytest
from slack_sdk.errors import SlackApiError

from standins.slack import SlackStandIn
from tests.integration.test_discord_standin import DEFAULT_CHANNEL_ID, FAN, FanBot, running  # noqa: F401
from tests.integration.test_discord_standin import standin as discord_standin  # noqa: F401 - the fixture
from tests.integration.test_slack_standin import web_client


async def test_slack_chat_delete_and_update_follow_slacks_rules() -> None:
    async with SlackStandIn() as slack:
        slack.add_channel("CDESK", members=["UMOD", "UBOT"])
        client = web_client(slack)
        own = await client.chat_postMessage(channel="CDESK", text="a relay")
        theirs = slack._user_message("UMOD", "CDESK", "a moderator's own line", None, "channel")  # noqa: SLF001 - stored, not delivered
        with pytest.raises(SlackApiError) as other:
            await client.chat_delete(channel="CDESK", ts=theirs["ts"])
        assert other.value.response["error"] == "cant_delete_message"
        with pytest.raises(SlackApiError) as unknown:
            await client.chat_delete(channel="CDESK", ts="1600000000.000001")
        assert unknown.value.response["error"] == "message_not_found"
        with pytest.raises(SlackApiError) as channel:
            await client.chat_delete(channel="CNOWHERE", ts=own["ts"])
        assert channel.value.response["error"] == "channel_not_found"
        slack.fail("chat.delete", own["ts"], "cant_delete_message")  # a test makes a delete fail
        with pytest.raises(SlackApiError):
            await client.chat_delete(channel="CDESK", ts=own["ts"])
        await client.chat_update(channel="CDESK", ts=own["ts"], text="[erased]", blocks=[])
        assert [m["text"] for m in slack.messages_in("CDESK") if m["ts"] == own["ts"]] == ["[erased]"]
        slack._failures.clear()  # noqa: SLF001
        deleted = await client.chat_delete(channel="CDESK", ts=own["ts"])
        assert deleted["ts"] == own["ts"] and (("CDESK", own["ts"]) in slack.deleted)
        assert not [m for m in slack.messages_in("CDESK") if m["ts"] == own["ts"]]


async def test_discord_message_and_thread_deletes_follow_discords_rules(discord_standin) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    async with running(FanBot()) as bot:
        channel = bot.get_channel(DEFAULT_CHANNEL_ID)
        assert isinstance(channel, discord.TextChannel)
        starter = await channel.send("Ticket #1")
        thread = await starter.create_thread(name="Ticket #1")
        inside = await thread.send("a relay")
        with pytest.raises(discord.NotFound) as unknown:
            await bot.http.delete_message(DEFAULT_CHANNEL_ID, 1234567890123)
        assert unknown.value.code == 10008
        discord_standin.fail("DELETE message", inside.id)  # 403 50013 Missing Permissions
        with pytest.raises(discord.Forbidden) as refused:
            await inside.delete()
        assert refused.value.code == 50013
        await inside.edit(content="[erased]")
        assert [m["content"] for m in discord_standin.messages(thread.id) if int(m["id"]) == inside.id] == ["[erased]"]
        await starter.delete()
        assert (DEFAULT_CHANNEL_ID, starter.id) in discord_standin.deleted
        await bot.http.delete_channel(thread.id)
        assert thread.id in discord_standin.deleted_channels and discord_standin.messages(thread.id) == []
        with pytest.raises(discord.NotFound):
            await bot.http.delete_channel(thread.id)
        # A user's message needs Manage Messages: take it from the bot's role.
        message_id = await discord_standin.send_guild_message(FAN, DEFAULT_CHANNEL_ID, "hello")
        guild = discord_standin._guilds[discord_standin.guild_id]  # noqa: SLF001
        for role in guild.roles.values():
            role["permissions"] = str(int(role["permissions"]) & ~(1 << 13))
        with pytest.raises(discord.Forbidden) as missing:
            await bot.http.delete_message(DEFAULT_CHANNEL_ID, message_id)
        assert missing.value.code == 50013
