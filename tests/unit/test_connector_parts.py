"""The platform-neutral parts the connectors share: splitting, dedupe, routing, rendering."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from bot.config import load_config
from bot.deliveries import DeliveryKeys
from bot.handoff.actions import Claim, DeskLineError, Reply, Resolve, Transfer
from bot.messages import Address, Kind, Outgoing
from connectors import discord_render, slack_render
from connectors.launch import ConsoleDeskInput
from connectors.router import Router
from connectors.slack_connector import COMMANDS
from connectors.splitting import split_text

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("limit", [10, 50, 200])
def test_split_pieces_fit_and_keep_every_word(limit: int) -> None:
    text = ("Paragraph one is here. It has sentences.\n\n" + "word " * 80 + "\nlast line " + "x" * 250).strip()
    pieces = split_text(text, limit)
    assert all(0 < len(piece) <= limit for piece in pieces)
    assert "".join(pieces).replace(" ", "").replace("\n", "") == text.replace(" ", "").replace("\n", "")


def test_split_prefers_paragraphs_then_sentences() -> None:
    assert split_text("First part here.\n\nSecond part here.", 25) == ["First part here.", "Second part here."]
    assert split_text("One sentence here. Two sentence here.", 25) == ["One sentence here.", "Two sentence here."]
    assert split_text("short", 100) == ["short"]
    assert split_text("", 100) == [""]


async def test_delivery_keys_remember_then_sweep(store) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy import select

    from bot.privacy.schema import delivery_keys

    now = [1000.0]
    keys = DeliveryKeys(store, lambda key: f"h-{key}", ttl_seconds=600, clock=lambda: now[0])
    assert await keys.first_time("a") and not await keys.first_time("a")
    assert await keys.first_time(None) and await keys.first_time(None)  # no id: cannot be a repeat
    with store.engine.connect() as connection:
        assert list(connection.execute(select(delivery_keys.c.key)).scalars()) == ["h-a"]  # hashed by the caller's digest
    now[0] += 599
    assert await keys.sweep() == 0 and not await keys.first_time("a")  # kept the whole TTL
    now[0] += 2
    assert await keys.sweep() == 1 and await keys.first_time("a")
    with pytest.raises(ValueError):
        DeliveryKeys(store, str, ttl_seconds=60)  # under Slack's 5 minutes of retries (and a margin)


class Recorder:
    def __init__(self) -> None:
        self.got: list[tuple[str, Outgoing]] = []

    async def post(self, message: Outgoing) -> None:
        self.got.append(("desk", message))

    async def send_to(self, address: Address, message: Outgoing) -> None:
        self.got.append((address.platform, message))


async def test_router_sends_each_reply_to_its_place() -> None:
    desk, slack, discord = Recorder(), Recorder(), Recorder()
    router = Router(desk)
    router.add_platform("slack", slack)
    router.add_platform("discord", discord)
    answered: list[Outgoing] = []

    async def answer(message: Outgoing) -> None:
        answered.append(message)

    here = Outgoing(Kind.ANSWER, "hi")
    ticket = Outgoing(Kind.HANDOFF_TICKET, "t", to="desk", ticket="1")
    pushed = Outgoing(Kind.MODERATOR_REPLY, "m", from_ai=False, recipient=Address("discord", "42", "dm"))
    lost = Outgoing(Kind.MODERATOR_REPLY, "m", recipient=Address("teams", "1", "x"))
    await router.deliver([here, ticket, pushed, lost], answer)
    assert answered == [here]
    assert desk.got == [("desk", ticket)] and discord.got == [("discord", pushed)] and slack.got == []


async def test_router_keeps_going_after_a_failed_delivery() -> None:
    class Broken:
        async def post(self, message: Outgoing) -> None:
            raise RuntimeError("down")

    answered: list[Outgoing] = []

    async def answer(message: Outgoing) -> None:
        answered.append(message)

    await Router(Broken()).deliver([Outgoing(Kind.HANDOFF_TICKET, "t", to="desk"), Outgoing(Kind.ANSWER, "a")], answer)
    assert [m.kind for m in answered] == [Kind.ANSWER]


def test_slack_blocks_are_labelled_escaped_and_split() -> None:
    messages = slack_render.render(Outgoing(Kind.ANSWER, "a <!channel> & b " + "word " * 3000))
    assert len(messages) >= 1
    for message in messages:
        assert message["blocks"][-1] == {"type": "context", "elements": [{"type": "mrkdwn", "text": "AI assistant · automated reply"}]}
        assert all(len(b["text"]["text"]) <= 3000 for b in message["blocks"] if b["type"] == "section")
        assert message["text"].startswith("AI assistant · automated reply: ")
    assert "&lt;!channel&gt; &amp; b" in messages[0]["text"]
    human = slack_render.render(Outgoing(Kind.MODERATOR_REPLY, "hello", from_ai=False))[0]
    assert "Human moderator" in human["blocks"][-1]["elements"][0]["text"]


def test_slack_buttons_for_erasure_and_tickets() -> None:
    confirm = slack_render.render(Outgoing(Kind.ERASURE_CONFIRM_REQUEST, "sure?"))[0]["blocks"]
    assert [e["action_id"] for b in confirm if b["type"] == "actions" for e in b["elements"]] == ["forget_me_confirm", "forget_me_cancel"]
    ticket = slack_render.render(Outgoing(Kind.HANDOFF_TICKET, "Ticket #7", to="desk", ticket="7"))[0]["blocks"]
    assert [(e["action_id"], e["value"]) for b in ticket if b["type"] == "actions" for e in b["elements"]] == [("ticket_claim", "7"), ("ticket_resolve", "7")]


def test_discord_pieces_fit_2000_and_are_labelled() -> None:
    pieces = discord_render.render(Outgoing(Kind.DATA_EXPORT, '{"k": "' + "v" * 5000 + '"}'))
    assert len(pieces) > 2 and all(len(p) <= 2000 for p in pieces)
    assert all(p.startswith("-# AI assistant · automated reply\n```") for p in pieces)
    assert "@\u200beveryone" in discord_render.render(Outgoing(Kind.HANDOFF_RELAY, "hey @everyone", to="desk"))[0]
    assert discord_render.NO_PINGS.everyone is False and discord_render.NO_PINGS.roles is False


def test_slack_manifest_matches_the_connector() -> None:
    manifest = yaml.safe_load((REPO / "connectors" / "slack_manifest.yml").read_text())
    assert tuple(c["command"] for c in manifest["features"]["slash_commands"]) == COMMANDS
    assert set(manifest["settings"]["event_subscriptions"]["bot_events"]) == {"app_mention", "message.im", "message.channels", "message.groups"}


def test_console_desk_lines_are_typed_actions_authorised_by_the_console_list_only() -> None:
    desk = ConsoleDeskInput(Router(), moderators=("mod1",))
    action = desk.parse("mod1 #3 /claim Sam")
    assert action is not None and (action.moderator_id, action.ticket, action.action, action.authorised) == ("mod1", 3, Claim("Sam"), True)
    reply = desk.parse("mod1 hello there")
    assert reply is not None and reply.ticket is None and reply.action == Reply("hello there")
    assert desk.parse("mod1") is None and desk.parse("mod1 #x hi") is None
    transfer = desk.parse("mod1 /transfer mod2 Sam")
    assert transfer is not None and transfer.action == Transfer("mod2", "Sam", target_authorised=False)
    outsider = desk.parse("someone /resolve")
    assert outsider is not None and outsider.action == Resolve() and not outsider.authorised
    with pytest.raises(DeskLineError):
        desk.parse("mod1 /resolv")


def test_platform_url_variables_and_validation() -> None:
    config = load_config(environ={"SLACK_API_BASE_URL": "http://127.0.0.1:9/api/", "DISCORD_GATEWAY_URL": "ws://127.0.0.1:9/gateway"})
    assert config.slack.api_base_url == "http://127.0.0.1:9/api/" and config.discord.gateway_url == "ws://127.0.0.1:9/gateway"
    both = load_config(environ={"SLACK_API_BASE_URL": "http://a/", "BOT_SLACK_API_BASE_URL": "http://b/"})
    assert both.slack.api_base_url == "http://b/"
    from bot.config import ConfigError

    with pytest.raises(ConfigError, match="slack.mode"):
        load_config(environ={"BOT_SLACK_MODE": "carrier-pigeon"})
    with pytest.raises(ConfigError, match="discord.gateway_url"):
        load_config(environ={"DISCORD_GATEWAY_URL": "http://x"})


def test_discord_text_shows_platform_markup_literally() -> None:
    """Found by QA: a Slack moderator's literal `<@123>` reached a Discord fan as a mention."""
    from bot.messages import Kind, Outgoing
    from connectors.discord_render import render

    [text] = render(Outgoing(Kind.MODERATOR_REPLY, "ping <@123>, see <#456>, <@&7> <t:1700000000> and <3", from_ai=False))
    for markup in ("<@123>", "<#456>", "<@&7>", "<t:1700000000>"):
        assert markup not in text
    assert "<3" in text and "@123" in text  # still readable
