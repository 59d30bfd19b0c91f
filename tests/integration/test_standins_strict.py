"""The stand-ins are as strict as Slack and Discord (issue 13): text format, message subtypes,
duplicate deliveries, response_url limits, uploads, channel membership; Discord's closed DMs,
Nitro-length messages, attachments, user edits and deletes, and missing permissions."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import discord
import pytest
from aiohttp import web
from slack_sdk.errors import SlackApiError

from standins.discord import CREATE_PUBLIC_THREADS, DEFAULT_CHANNEL_ID, SEND_MESSAGES, DiscordStandIn
from standins.slack import SlackStandIn
from standins.slack.text import escape
from tests.integration.test_discord_standin import FAN, FanBot, running
from tests.integration.test_discord_standin import standin as discord_standin  # noqa: F401 - the fixture
from tests.integration.test_slack_standin import web_client


@pytest.fixture
async def slack() -> AsyncIterator[tuple[SlackStandIn, list[dict[str, Any]]]]:
    """A stand-in in HTTP mode posting to a receiver that acks and keeps every body."""
    received: list[dict[str, Any]] = []

    async def events(request: web.Request) -> web.Response:
        received.append(json.loads(await request.read()))
        return web.Response(text="")

    app = web.Application()
    app.router.add_post("/events", events)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    async with SlackStandIn(bot_token="xoxb-test", mode="http", http_target=f"http://127.0.0.1:{port}/events") as standin:
        standin.add_user("UMOD1", "Sam")
        standin.add_channel("CDESK", members=["UMOD1", "UBOT"], name="desk")
        yield standin, received
    await runner.cleanup()


async def test_slack_delivers_escaped_text_and_markup_and_shows_it_rendered(slack) -> None:  # type: ignore[no-untyped-def]
    standin, received = slack
    with pytest.raises(ValueError):
        await standin.send_dm("U1", "thanks to the R&D team <3")  # Slack never delivers that
    assert escape("thanks to the R&D team <3") == "thanks to the R&amp;D team &lt;3"
    await standin.send_dm("U1", "thanks to the R&amp;D team &lt;3 <https://x.example/p|label> <@UMOD1> <#CDESK|desk> <!here>")
    assert received[-1]["event"]["text"].startswith("thanks to the R&amp;D")
    client = web_client(standin)
    await client.chat_postMessage(channel="U1", text="R&amp;D &amp;amp; <@UMOD1> <https://h.example|guide>")
    assert standin.sent[-1].seen == "R&D &amp; @Sam guide"  # a double escape shows; an id would too


async def test_slack_message_subtypes_are_shaped_like_slacks(slack) -> None:  # type: ignore[no-untyped-def]
    standin, received = slack
    await standin.send_subtype("file_share", "U1", standin.dm_channel("U1"), "my screen", files=["shot.png"])
    share = received[-1]["event"]
    assert share["subtype"] == "file_share" and share["files"][0]["name"] == "shot.png" and share["user"] == "U1"
    await standin.send_subtype("me_message", "U1", standin.dm_channel("U1"), "waves")
    assert received[-1]["event"]["subtype"] == "me_message"
    parent = (await standin.send_channel_message("UMOD1", "CDESK", "thread root")).payload["event"]["ts"]
    await standin.send_subtype("thread_broadcast", "UMOD1", "CDESK", "to all", thread_ts=parent)
    assert received[-1]["event"]["root"]["ts"] == parent and received[-1]["event"]["thread_ts"] == parent
    await standin.send_subtype("message_changed", None, "CDESK", "edited root", ts=parent)
    changed = received[-1]["event"]
    assert changed["hidden"] and "user" not in changed and changed["message"]["text"] == "edited root"
    await standin.send_subtype("message_deleted", None, "CDESK", ts=parent)
    assert received[-1]["event"]["deleted_ts"] == parent and "user" not in received[-1]["event"]
    await standin.send_subtype("channel_join", "U2", "CDESK")
    assert received[-1]["event"]["text"] == "<@U2> has joined the channel"
    await standin.send_subtype("bot_message", None, "CDESK", "a feed")
    assert "user" not in received[-1]["event"] and received[-1]["event"]["bot_id"]


async def test_slack_delivers_one_message_again_under_a_new_event_id(slack) -> None:  # type: ignore[no-untyped-def]
    standin, received = slack
    first = await standin.send_dm("U1", "hello")
    second = await standin.redeliver_as_new(first)
    assert second.event_id != first.event_id
    a, b = received[-2]["event"], received[-1]["event"]
    assert (a["ts"], a["client_msg_id"]) == (b["ts"], b["client_msg_id"])


async def test_slack_response_url_takes_five_posts_within_thirty_minutes(slack) -> None:  # type: ignore[no-untyped-def]
    standin, _ = slack
    url = standin._new_response_url("D1", "U1")  # noqa: SLF001 - what a command's payload carries
    async with aiohttp.ClientSession() as session:
        for _ in range(5):
            async with session.post(url, json={"text": "part"}) as answer:
                assert answer.status == 200
        async with session.post(url, json={"text": "sixth"}) as answer:
            assert answer.status == 404 and (await answer.json())["error"] == "used_url"
        late = standin._new_response_url("D1", "U1")  # noqa: SLF001
        standin.advance(30 * 60 + 1)
        async with session.post(late, json={"text": "late"}) as answer:
            assert answer.status == 404 and (await answer.json())["error"] == "expired_url"


async def test_slack_files_upload_v2_shares_the_file_in_the_dm(slack) -> None:  # type: ignore[no-untyped-def]
    standin, _ = slack
    client = web_client(standin)
    await client.files_upload_v2(channel="DU1", filename="my-data.txt", content="line\n" * 1000, initial_comment="Your data")
    shared = standin.sent[-1]
    assert shared.method == "files.completeUploadExternal" and shared.channel == "DU1"
    assert shared.files[0]["content"] == "line\n" * 1000 and shared.seen == "Your data"


async def test_slack_refuses_channels_the_app_cannot_post_in(slack) -> None:  # type: ignore[no-untyped-def]
    standin, _ = slack
    standin.add_channel("CPRIVATE", members=["UMOD1"])
    client = web_client(standin)
    for channel, error in (("CNOWHERE", "channel_not_found"), ("CPRIVATE", "not_in_channel")):
        with pytest.raises(SlackApiError) as raised:
            await client.chat_postMessage(channel=channel, text="hi")
        assert raised.value.response["error"] == error


async def test_discord_nitro_messages_attachments_edits_and_deletes(discord_standin: DiscordStandIn) -> None:  # noqa: F811
    client = FanBot()
    edits: list[tuple[str, str]] = []
    deletes: list[int] = []
    async with running(client):
        client.on_message_edit = lambda before, after: _append(edits, (before.content, after.content))  # type: ignore[method-assign]
        client.on_raw_message_delete = lambda payload: _append(deletes, payload.message_id)  # type: ignore[method-assign]
        long = "x" * 2600
        message_id = await discord_standin.send_dm(FAN, long, attachments=["shot.png"])
        got = await client.next_message()
        assert got.content == long and got.attachments[0].filename == "shot.png"
        with pytest.raises(ValueError):
            await discord_standin.send_dm(FAN, "x" * 4001)
        with pytest.raises(discord.HTTPException) as too_long:
            await got.channel.send("y" * 2001)  # what bots send stays within 2,000
        assert too_long.value.code == 50035
        await discord_standin.edit_user_message(message_id, "edited")
        await discord_standin.delete_user_message(message_id)
        for _ in range(50):
            if edits and deletes:
                break
            await asyncio.sleep(0.05)
        assert edits == [(long, "edited")] and deletes == [message_id]


async def test_discord_missing_permissions_are_403_50013(discord_standin: DiscordStandIn) -> None:  # noqa: F811
    async with running(FanBot()) as client:
        channel = client.get_channel(DEFAULT_CHANNEL_ID)
        assert isinstance(channel, discord.TextChannel)
        starter = await channel.send("ticket")
        discord_standin.deny(DEFAULT_CHANNEL_ID, CREATE_PUBLIC_THREADS)
        with pytest.raises(discord.Forbidden) as no_threads:
            await starter.create_thread(name="Ticket #1")
        discord_standin.deny(DEFAULT_CHANNEL_ID, SEND_MESSAGES)
        with pytest.raises(discord.Forbidden) as no_send:
            await channel.send("hello")
        assert no_threads.value.code == no_send.value.code == 50013


async def _append(items: list[Any], item: Any) -> None:
    items.append(item)
