"""The Slack stand-in against the real slack-sdk and slack-bolt: what a connector test relies on.

Each test drives the real AsyncWebClient, AsyncApp, AsyncSocketModeHandler or Bolt's aiohttp
server; nothing of the SDKs is mocked. These tests also pin SDK behaviour a connector must
know (Bolt does not dedupe retries; Socket Mode leaves unmatched envelopes unacked).
"""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.web.async_client import AsyncWebClient

from standins.slack import SentMessage, SlackStandIn

BOT_TOKEN, APP_TOKEN, SECRET = "xoxb-test", "xapp-test", "test-signing-secret"
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
async def standin() -> AsyncIterator[SlackStandIn]:
    async with SlackStandIn(
        bot_token=BOT_TOKEN, app_token=APP_TOKEN, signing_secret=SECRET, bot_user_id="UBOT", bot_id="BBOT",
        team_id="T0001", app_id="A0001",
    ) as running:
        for channel in ("C1", "C2", "CDESK"):  # channels the app was invited to (else not_in_channel)
            running.add_channel(channel, members=["UBOT"])
        yield running


def web_client(standin: SlackStandIn, token: str = BOT_TOKEN, **kwargs: Any) -> AsyncWebClient:
    return AsyncWebClient(token=token, base_url=standin.api_base_url, **kwargs)


def bolt_app(standin: SlackStandIn) -> AsyncApp:
    # The token comes from the client: passing token= too only makes Bolt warn.
    return AsyncApp(client=web_client(standin), signing_secret=SECRET)


@pytest.fixture
async def socket_app(standin: SlackStandIn) -> AsyncIterator[AsyncApp]:
    """A Bolt app connected over Socket Mode; a small ping interval makes reconnects fast."""
    app = bolt_app(standin)
    handler = AsyncSocketModeHandler(app, APP_TOKEN, ping_interval=0.3)
    await handler.connect_async()
    await standin.wait_for_socket(5)
    yield app
    await handler.close_async()


@pytest.fixture
async def http_app(standin: SlackStandIn) -> AsyncIterator[AsyncApp]:
    """A Bolt app served by Bolt's own aiohttp server on a random port; the stand-in POSTs to it."""
    app = bolt_app(standin)
    runner = web.AppRunner(app.web_app(path="/slack/events"))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    standin.mode = "http"
    standin.http_target = f"http://127.0.0.1:{runner.addresses[0][1]}/slack/events"
    yield app
    await runner.cleanup()


# ---------------------------------------------------------------- Web API


async def test_auth_test_answers_what_bolt_reads(standin: SlackStandIn) -> None:
    answer = await web_client(standin).auth_test()
    assert answer.status_code == 200
    assert answer.data == {
        "ok": True, "url": "https://standin.slack.com/", "team": "Stand-in Fans", "user": "fan-assistant",
        "team_id": "T0001", "user_id": "UBOT", "bot_id": "BBOT", "is_enterprise_install": False,
    }
    assert answer.headers["X-OAuth-Scopes"]


@pytest.mark.parametrize(
    ("token", "error"),
    [("xoxb-wrong", "invalid_auth"), (None, "not_authed"), (APP_TOKEN, "not_allowed_token_type")],
)
async def test_tokens_are_checked_as_slack_does(standin: SlackStandIn, token: Any, error: str) -> None:
    with pytest.raises(SlackApiError) as raised:
        await web_client(standin, token=token).auth_test()
    assert raised.value.response["error"] == error


async def test_app_token_opens_connections_only(standin: SlackStandIn) -> None:
    opened = await web_client(standin).apps_connections_open(app_token=APP_TOKEN)
    assert opened["url"].startswith(f"ws://127.0.0.1:{standin.url.rsplit(':', 1)[1]}/link/?ticket=")
    with pytest.raises(SlackApiError) as raised:
        await web_client(standin).apps_connections_open(app_token=BOT_TOKEN)
    assert raised.value.response["error"] == "not_allowed_token_type"


async def test_unknown_method_and_missing_arguments(standin: SlackStandIn) -> None:
    client = web_client(standin)
    for call, error in [
        (client.api_call("chat.nonsense"), "unknown_method"),
        (client.chat_postMessage(channel="", text="hi"), "channel_not_found"),
        (client.api_call("chat.postMessage", json={"channel": "C1"}), "no_text"),
        (client.chat_postMessage(channel="C1", text="x" * 40_001), "msg_too_long"),
        (client.chat_update(channel="C1", ts="1.2", text="x"), "message_not_found"),
        (client.users_info(user="UNOBODY"), "user_not_found"),
        (client.usergroups_users_list(usergroup="SNONE"), "no_such_subteam"),
        (client.conversations_members(channel="CNONE"), "channel_not_found"),
    ]:
        with pytest.raises(SlackApiError) as raised:
            await call
        assert raised.value.response.status_code == 200
        assert raised.value.response["error"] == error
    assert standin.sent == []


async def test_post_message_is_recorded_and_threads_read_back(standin: SlackStandIn) -> None:
    client = web_client(standin)
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "New ticket"}}]
    parent = await client.chat_postMessage(channel="CDESK", text="New ticket", blocks=blocks)
    assert parent["channel"] == "CDESK"
    assert parent["message"]["bot_id"] == "BBOT" and parent["message"]["user"] == "UBOT"
    reply = await client.chat_postMessage(channel="CDESK", text="fan says hi", thread_ts=parent["ts"])
    assert float(reply["ts"]) > float(parent["ts"])
    assert reply["message"]["thread_ts"] == parent["ts"]

    first, second = standin.sent
    assert first == SentMessage(
        "chat.postMessage", "CDESK", "New ticket", blocks, None, ts=parent["ts"], raw=first.raw, seen="New ticket"
    )
    assert (second.thread_ts, second.ts) == (parent["ts"], reply["ts"])
    assert ("chat.postMessage", {"channel": "CDESK", "text": "New ticket", "blocks": blocks}) in standin.calls

    replies = await client.conversations_replies(channel="CDESK", ts=parent["ts"])
    assert [m["ts"] for m in replies["messages"]] == [parent["ts"], reply["ts"]]
    assert replies["messages"][0]["reply_count"] == 1

    updated = await client.chat_update(channel="CDESK", ts=parent["ts"], text="Ticket claimed")
    assert updated["text"] == "Ticket claimed"
    assert standin.sent[-1].method == "chat.update" and standin.sent[-1].ts == parent["ts"]


async def test_dm_ephemeral_and_directory(standin: SlackStandIn) -> None:
    standin.add_user("U1", "fan one")
    standin.add_user("UMOD", "mod", is_bot=False)
    standin.add_channel("CDESK", members=["UMOD", "UBOT"])
    standin.add_usergroup("SMODS", members=["UMOD"])
    client = web_client(standin)

    opened = await client.conversations_open(users="U1")
    assert opened["channel"]["id"] == standin.dm_channel("U1") == "D1"
    to_user = await client.chat_postMessage(channel="U1", text="hello")  # a user id means the DM
    assert to_user["channel"] == "D1"

    ephemeral = await client.chat_postEphemeral(channel="CDESK", user="UMOD", text="only you")
    assert ephemeral["message_ts"]
    assert standin.sent[-1].method == "chat.postEphemeral" and standin.sent[-1].user == "UMOD"
    with pytest.raises(SlackApiError, match="user_not_in_channel"):
        await client.chat_postEphemeral(channel="CDESK", user="U1", text="not a member")

    assert (await client.conversations_members(channel="CDESK"))["members"] == ["UMOD", "UBOT"]
    assert (await client.usergroups_users_list(usergroup="SMODS"))["users"] == ["UMOD"]
    assert (await client.users_info(user="UBOT"))["user"]["is_bot"] is True
    assert (await client.users_info(user="U1"))["user"]["name"] == "fan one"


async def test_rate_limit_answers_429_then_the_retry_handler_succeeds(standin: SlackStandIn) -> None:
    standin.rate_limit("chat.postMessage", times=1, retry_after=0)  # 0 keeps the test fast
    bare = web_client(standin)
    with pytest.raises(SlackApiError) as raised:
        await bare.chat_postMessage(channel="C1", text="hi")
    assert raised.value.response.status_code == 429
    assert raised.value.response.headers["Retry-After"] == "0"
    assert raised.value.response["error"] == "ratelimited"

    standin.rate_limit("chat.postMessage", times=2, retry_after=0)
    retrying = web_client(standin, retry_handlers=[AsyncRateLimitErrorRetryHandler(max_retry_count=2)])
    answer = await retrying.chat_postMessage(channel="C1", text="hi")
    assert answer["ok"] is True
    assert standin.rate_limited == ["chat.postMessage"] * 3
    assert [m.ts for m in standin.sent] == [answer["ts"]]


async def test_wait_for_sent_explains_a_timeout(standin: SlackStandIn) -> None:
    await web_client(standin).chat_postMessage(channel="C1", text="something else")
    with pytest.raises(AssertionError, match=r"found 0; sent so far \(1\)"):
        await standin.wait_for_sent(lambda m: m.channel == "C2", timeout=0.1)
    standin.clear()
    assert standin.sent == [] and standin.calls == []


# ---------------------------------------------------------------- Socket Mode


async def test_socket_mode_event_reaches_bolt_and_is_acked(standin: SlackStandIn, socket_app: AsyncApp) -> None:
    seen: list[tuple[dict[str, Any], list[str]]] = []

    @socket_app.event("message")
    async def on_message(event: dict[str, Any], request: Any, say: Any) -> None:
        seen.append((event, request.headers.get("x-slack-retry-num")))
        await say(text=f"echo: {event['text']}", thread_ts=event.get("thread_ts"))

    assert standin.socket_connections == 1
    delivery = await standin.send_dm("U1", "hello bot")
    assert delivery.acked and delivery.status == 200 and delivery.envelope_id in standin.acks
    assert delivery.latency_ms is not None and delivery.latency_ms < 3000
    assert delivery.event_id == delivery.payload["event_id"] and delivery.event_id.startswith("Ev")

    [reply] = await standin.wait_for_sent(lambda m: m.channel == "D1")
    assert reply.text == "echo: hello bot"
    event, retry_header = seen[0]
    assert event["channel_type"] == "im" and event["user"] == "U1" and event["ts"] == event["event_ts"]
    # Socket Mode always passes retry_attempt on, so Bolt sets the header to "0" on a first delivery.
    assert retry_header == ["0"]

    envelope = standin.envelopes[0]
    assert envelope["type"] == "events_api" and envelope["retry_attempt"] == 0
    assert envelope["payload"]["authorizations"][0] == {
        "enterprise_id": None, "team_id": "T0001", "user_id": "UBOT", "is_bot": True, "is_enterprise_install": False,
    }


async def test_bolt_does_not_dedupe_a_redelivered_event(standin: SlackStandIn, socket_app: AsyncApp) -> None:
    seen: list[tuple[str, list[str]]] = []

    @socket_app.event("message")
    async def on_message(body: dict[str, Any], request: Any) -> None:
        seen.append((body["event_id"], request.headers.get("x-slack-retry-num")))

    first = await standin.send_dm("U1", "once")
    again = await standin.redeliver(first)
    assert again.acked and again.retry == 1 and again.envelope_id != first.envelope_id
    await asyncio.sleep(0.1)
    assert seen == [(first.event_id, ["0"]), (first.event_id, ["1"])]


async def test_bolt_skips_its_own_messages_but_acks_them(standin: SlackStandIn, socket_app: AsyncApp) -> None:
    seen: list[dict[str, Any]] = []

    @socket_app.event("message")
    async def on_message(event: dict[str, Any]) -> None:
        seen.append(event)

    own = await standin.send_channel_message("UBOT", "CDESK", "bot's own", bot_id="BBOT")
    moderator = await standin.send_channel_message("UMOD", "CDESK", "moderator", thread_ts="1700000000.000100")
    assert own.acked and moderator.acked
    await asyncio.sleep(0.1)
    assert [e["text"] for e in seen] == ["moderator"]
    assert seen[0]["channel_type"] == "channel" and seen[0]["thread_ts"] == "1700000000.000100"


async def test_unmatched_envelope_is_not_acked_and_slack_redelivers(standin: SlackStandIn, socket_app: AsyncApp) -> None:
    # Bolt answers 404 for an event no listener matches and the Socket Mode adapter then sends no ack.
    standin.ack_timeout = 0.3
    delivery = await standin.send_mention("U1", "CGENERAL", "anyone there?")
    assert not delivery.acked and delivery.status == 0
    assert delivery.attempts == 2 and delivery.retry == 1
    assert [e["retry_attempt"] for e in standin.envelopes] == [0, 1]
    assert standin.envelopes[1]["retry_reason"] == "timeout"
    assert standin.envelopes[0]["payload"]["event"]["text"] == "<@UBOT> anyone there?"


async def test_slash_command_over_socket(standin: SlackStandIn, socket_app: AsyncApp) -> None:
    @socket_app.command("/human")
    async def human(ack: Any, respond: Any, command: dict[str, Any]) -> None:
        await ack(text="Finding a person for you")
        await respond(text="A moderator will join", response_type="ephemeral")

    standin.add_user("U1", "fanone")
    delivery = await standin.send_command("/human", "", "U1")
    assert delivery.acked and delivery.ack_payload == {"text": "Finding a person for you"}
    envelope = standin.envelopes[-1]
    assert envelope["type"] == "slash_commands" and envelope["accepts_response_payload"] is True
    assert envelope["payload"]["user_name"] == "fanone" and envelope["payload"]["channel_id"] == "D1"

    sent = {m.method: m for m in await standin.wait_for_sent(count=2)}  # respond() may beat the ack
    ack, responded = sent["ack"], sent["response_url"]
    assert (ack.method, ack.text, ack.user, ack.channel) == ("ack", "Finding a person for you", "U1", "D1")
    assert (responded.method, responded.text, responded.response_type) == (
        "response_url", "A moderator will join", "ephemeral",
    )
    assert (responded.channel, responded.user) == ("D1", "U1")


async def test_button_click_over_socket(standin: SlackStandIn, socket_app: AsyncApp) -> None:
    @socket_app.action("claim")
    async def claim(ack: Any, body: dict[str, Any], respond: Any) -> None:
        await ack()
        await respond(text=f"claimed {body['actions'][0]['value']}", replace_original=False)

    ticket = await web_client(standin).chat_postMessage(channel="CDESK", text="ticket 7", blocks=[
        {"type": "actions", "block_id": "b", "elements": [
            {"type": "button", "action_id": "claim", "value": "7", "text": {"type": "plain_text", "text": "Claim"}}]}])
    delivery = await standin.click_button("UMOD", "claim", "7", "CDESK", ticket["ts"])
    assert delivery.acked
    payload = delivery.payload
    assert payload["message"]["text"] == "ticket 7" and payload["container"]["message_ts"] == ticket["ts"]
    [responded] = await standin.wait_for_sent(lambda m: m.method == "response_url")
    assert (responded.text, responded.user, responded.replace_original) == ("claimed 7", "UMOD", False)


async def test_dropped_socket_reconnects_and_gets_the_next_event(standin: SlackStandIn, socket_app: AsyncApp) -> None:
    seen: list[str] = []

    @socket_app.event("message")
    async def on_message(event: dict[str, Any]) -> None:
        seen.append(event["text"])

    opened_before = sum(1 for method, _ in standin.calls if method == "apps.connections.open")
    await standin.drop_socket()
    delivery = await standin.send_dm("U1", "after the drop")  # waits for the client's new connection
    assert delivery.acked and seen == ["after the drop"]
    assert standin.socket_connections == 2
    assert sum(1 for method, _ in standin.calls if method == "apps.connections.open") == opened_before + 1

    await standin.send_disconnect()
    await asyncio.sleep(0.1)
    await standin.wait_for_socket(5)
    assert (await standin.send_dm("U1", "after the refresh")).acked
    assert standin.socket_connections == 3 and seen[-1] == "after the refresh"


async def test_event_sent_before_any_connection_waits_for_one(standin: SlackStandIn) -> None:
    app = bolt_app(standin)
    seen: list[str] = []

    @app.event("message")
    async def on_message(event: dict[str, Any]) -> None:
        seen.append(event["text"])

    pending = asyncio.create_task(standin.send_dm("U1", "early"))
    await asyncio.sleep(0.2)
    handler = AsyncSocketModeHandler(app, APP_TOKEN, ping_interval=0.3)
    await handler.connect_async()
    try:
        assert (await pending).acked and seen == ["early"]
    finally:
        await handler.close_async()


# ---------------------------------------------------------------- HTTP mode


async def test_http_mode_signed_event_reaches_bolt(standin: SlackStandIn, http_app: AsyncApp) -> None:
    seen: list[dict[str, Any]] = []

    @http_app.event("message")
    async def on_message(event: dict[str, Any], say: Any) -> None:
        seen.append(event)
        await say("got it")

    delivery = await standin.send_dm("U1", "héllo over HTTP")  # non-ASCII: the signature covers the UTF-8 bytes
    assert delivery.status == 200 and delivery.mode == "http"
    await standin.wait_for_sent(lambda m: m.text == "got it" and m.channel == "D1")
    assert seen[0]["text"] == "héllo over HTTP"


async def test_http_mode_rejects_forged_and_stale_requests(standin: SlackStandIn, http_app: AsyncApp) -> None:
    seen: list[dict[str, Any]] = []

    @http_app.event("message")
    async def on_message(event: dict[str, Any]) -> None:
        seen.append(event)

    forged = await standin.send_dm("U1", "forged", signature="v0=bad")
    stale = await standin.send_dm("U1", "stale", timestamp=str(int(time.time()) - 600))
    assert (forged.status, stale.status) == (401, 401)
    assert forged.attempts == 1  # Slack redelivers timeouts only
    assert seen == []


async def test_http_mode_command_click_and_retry_headers(standin: SlackStandIn, http_app: AsyncApp) -> None:
    retries: list[list[str]] = []

    @http_app.command("/human")
    async def human(ack: Any, command: dict[str, Any]) -> None:
        await ack(text=f"hi {command['user_name']}, text={command['text']!r}")

    @http_app.action("claim")
    async def claim(ack: Any, respond: Any) -> None:
        await ack()
        await respond("claimed")

    @http_app.event("message")
    async def on_message(request: Any) -> None:
        retries.append(request.headers.get("x-slack-retry-num"))

    command = await standin.send_command("/human", "need a person", "U1", "CGENERAL")
    assert command.status == 200 and command.ack_payload == {"text": "hi u1, text='need a person'"}
    assert (await standin.click_button("UMOD", "claim", "7", "CDESK", "1700000000.000100")).status == 200
    await standin.wait_for_sent(lambda m: m.method == "response_url" and m.text == "claimed")

    first = await standin.send_dm("U1", "hello")
    assert (await standin.redeliver(first)).status == 200
    assert retries == [None, ["1"]]


# ---------------------------------------------------------------- offline trials


async def test_control_api_and_quiet_logs(
    standin: SlackStandIn, socket_app: AsyncApp, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="standins.slack")

    @socket_app.event("message")
    async def on_message(say: Any) -> None:
        await say("secret-reply-text")

    async with aiohttp.ClientSession() as http:
        async with http.post(f"{standin.url}/_standin/dm", json={"user": "U1", "text": "secret-fan-text"}) as answer:
            assert (await answer.json())["status"] == 200
        await standin.wait_for_sent()
        async with http.get(f"{standin.url}/_standin/sent") as answer:
            [sent] = await answer.json()
    assert (sent["method"], sent["channel"], sent["text"]) == ("chat.postMessage", "D1", "secret-reply-text")
    await standin.drop_socket()  # connection lines are logged at INFO
    await standin.wait_for_socket(5)
    logged = {r.levelno: r.getMessage() for r in caplog.records}
    assert logging.INFO in logged and logging.DEBUG in logged
    assert not any("secret" in r.getMessage() for r in caplog.records if r.levelno >= logging.INFO)


def test_command_line_prints_the_settings() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "standins.slack", "--port", "0"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    try:
        assert process.stdout is not None
        lines = [process.stdout.readline() for _ in range(6)]
    finally:
        process.terminate()
        process.communicate(timeout=10)
    text = "".join(lines)
    assert "export SLACK_API_BASE_URL=http://127.0.0.1:" in text and "/api/" in text
    for name in ("SLACK_BOT_TOKEN=xoxb-", "SLACK_APP_TOKEN=xapp-", "SLACK_SIGNING_SECRET="):
        assert name in text
