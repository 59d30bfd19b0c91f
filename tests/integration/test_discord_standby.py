"""A Discord standby worker sends over Discord's REST API (issue 16): while another worker holds
the gateway, a message for a Discord fan (a moderator's claim notice, a reply) and the desk's
ticket packet still go out from this worker, through a second real discord.py client that is
logged in but never connected, against the Discord stand-in; the stand-in sees no IDENTIFY
from it. The lock is the one test double here: a `Leadership` that never leads (the real
advisory lock is exercised in test_workers.py and test_two_workers.py)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta

import pytest

from bot.config import AssistantSettings, DiscordSettings, HandoffSettings
from bot.conversation import ConversationMemory
from bot.core import Bot
from bot.engine.remote import ModelServerEngine
from bot.handoff.actions import Claim, ModeratorAction, Reply
from bot.messages import Incoming
from bot.privacy.pseudonym import Pseudonymizer
from bot.privacy.store import TranscriptStore
from connectors.discord_connector import DiscordConnector
from connectors.discord_gateway import REST_LOGIN_FAILED, GatewayHolder
from connectors.router import Router
from standins.discord import DiscordStandIn, point_discord_at
from tests.integration.test_discord_connector import DESK_ID, FAN, KEY, MOD_ROLE, MODERATOR, TOKEN

pytestmark = pytest.mark.integration

WAIT = 20.0


class NeverLeading:
    """Another worker holds the gateway for the whole test."""

    name = "discord-gateway"
    poll_seconds = 0.2

    @property
    def leading(self) -> bool:
        return False

    async def wait_until_leading(self) -> None:
        await asyncio.Event().wait()

    async def still_leading(self) -> bool:
        return False

    def resign(self) -> None:
        return None

    async def aclose(self) -> None:
        return None


@dataclass
class Standby:
    standin: DiscordStandIn
    holder: GatewayHolder
    bot: Bot
    router: Router


@contextlib.asynccontextmanager
async def standby_worker(
    engine: ModelServerEngine, store: TranscriptStore, rest: bool = True, rest_token: str = TOKEN
) -> AsyncIterator[Standby]:
    async with DiscordStandIn(token=TOKEN) as standin:
        standin.add_role(MOD_ROLE, "moderators")
        standin.add_channel(DESK_ID, "mod-desk")
        standin.add_member(FAN, "fan")
        standin.add_member(MODERATOR, "Robin", roles=[MOD_ROLE])
        restore = point_discord_at(standin.api_base, standin.gateway_url)
        settings = DiscordSettings(
            api_base_url=standin.api_base, gateway_url=standin.gateway_url, guild_id=str(standin.guild_id), moderator_role=str(MOD_ROLE)
        )
        router = Router(expiry_seconds=3.0)

        def connector(token: str = TOKEN) -> DiscordConnector:
            return DiscordConnector(settings, token, router, str(DESK_ID), guild_ready_timeout=0.1)

        holder = GatewayHolder(connector(), NeverLeading(), rest=connector(rest_token) if rest else None)
        router.add_platform("discord", holder)
        router.desk = holder.desk
        handoff = HandoffSettings(desk=f"discord:{DESK_ID}")
        bot = Bot(engine, Pseudonymizer(KEY), AssistantSettings(), ConversationMemory(1800), store, handoff=handoff)
        task = asyncio.create_task(holder.run(bot))
        try:
            await asyncio.sleep(0.3)  # standing by
            yield Standby(standin, holder, bot, router)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await holder.aclose()
            await bot.drain()
            restore()


async def test_a_standby_posts_the_ticket_and_reaches_the_discord_fan_over_rest(model_engine: ModelServerEngine, store: TranscriptStore) -> None:
    async with standby_worker(model_engine, store) as world:
        standin, bot, router = world.standin, world.bot, world.router
        # The fan's /human was received by the gateway holder (another worker); this worker
        # handles what follows from it: the packet to the desk, the moderator's claim and reply.
        replies = await bot.handle(Incoming("discord", str(FAN), "dm", "/human"))
        outcomes = await router.deliver([r for r in replies if r.to == "desk"])
        assert all(o.status.value == "delivered" for o in outcomes), outcomes
        [packet] = await standin.wait_for_sent(lambda m: m.channel_id == DESK_ID and "Ticket #1" in (m.content or ""), timeout=WAIT)
        assert packet.components  # Claim / Resolve buttons, as from the holder
        assert len(standin.threads) == 1  # the ticket's thread, created over REST
        ticket = await bot.handoff.tickets.get(1)
        assert ticket is not None and ticket.location is not None and ticket.location.thread == str(standin.threads[0]["id"])

        await router.deliver(await bot.moderate(ModeratorAction(str(MODERATOR), Claim("Robin"), 1, True)))
        await router.deliver(await bot.moderate(ModeratorAction(str(MODERATOR), Reply("Hi, Robin here: what happened?"), 1, True)))
        dm = standin.dm_channel_id(FAN)
        await standin.wait_for_sent(lambda m: m.channel_id == dm and "Robin" in (m.content or ""), count=2, timeout=WAIT)
        assert standin.identifies == 0  # never on the gateway: another worker holds it
        assert world.holder.rest is not None and world.holder.rest.logged_in and not world.holder.connector.logged_in

        # The fan's erasure reaches this worker too: the desk copies go at once, over REST.
        receipt = await bot.handle(Incoming("discord", str(FAN), "dm", "/forget-me confirm"))
        text = " ".join(r.text for r in receipt)
        assert "I deleted" in text and "could neither delete nor edit" not in text, text
        assert (DESK_ID, packet.message_id) in standin.deleted
        assert not [m for m in standin.messages(DESK_ID) if int(m["id"]) == packet.message_id]
        assert await bot.handoff.tickets.pending_removals(datetime.utcnow() + timedelta(minutes=1)) == []


async def test_without_a_rest_client_a_standby_only_retries(model_engine: ModelServerEngine, store: TranscriptStore) -> None:
    """The control: the same steps with no REST client send nothing (the outbox retries until
    its 3-second expiry), which is what a standby did before."""
    async with standby_worker(model_engine, store, rest=False) as world:
        replies = await world.bot.handle(Incoming("discord", str(FAN), "dm", "/human"))
        outcomes = await world.router.deliver([r for r in replies if r.to == "desk"])
        assert [o.status.value for o in outcomes] == ["expired"] * len(outcomes), outcomes
        assert not [m for m in world.standin.sent if m.channel_id == DESK_ID]


async def test_a_refused_rest_login_is_retried_and_logged_in_one_line(
    model_engine: ModelServerEngine, store: TranscriptStore, caplog: pytest.LogCaptureFixture
) -> None:
    """A standby whose REST login fails (here a refused token) keeps the message in the outbox
    (retried, then expired with the reason) and says why in one WARNING line per try."""
    caplog.set_level(logging.WARNING, logger="connectors")
    async with standby_worker(model_engine, store, rest_token="not-the-token") as world:
        replies = await world.bot.handle(Incoming("discord", str(FAN), "dm", "/human"))
        outcomes = await world.router.deliver([r for r in replies if r.to == "desk"])
        assert [(o.status.value, o.reason) for o in outcomes] == [("expired", REST_LOGIN_FAILED)] * len(outcomes)
        refused = [r.getMessage() for r in caplog.records if r.name == "connectors.discord_gateway"]
        assert len(refused) >= 2 and all("token was refused" in line and "\n" not in line for line in refused), refused
        assert world.holder.rest is not None and not world.holder.rest.logged_in


async def test_a_refused_slash_command_sync_does_not_stop_serving_and_is_tried_again(
    model_engine: ModelServerEngine, store: TranscriptStore, caplog: pytest.LogCaptureFixture
) -> None:
    """QA: a 503 on the start-up sync (PUT .../commands) raised out of on_ready: the commands
    were never synced in that session and the connector never counted as serving (so a later
    crash was fatal instead of restarted). Now it serves at once and syncs on a later try."""
    caplog.set_level(logging.INFO, logger="connectors")
    async with DiscordStandIn(token=TOKEN) as standin:
        standin.add_member(FAN, "fan")
        standin.unavailable(r"/applications/\d+/guilds/\d+/commands", method="PUT")
        restore = point_discord_at(standin.api_base, standin.gateway_url)
        settings = DiscordSettings(api_base_url=standin.api_base, gateway_url=standin.gateway_url, guild_id=str(standin.guild_id))
        router = Router()
        connector = DiscordConnector(settings, TOKEN, router, guild_ready_timeout=0.1)
        router.add_platform("discord", connector)
        bot = Bot(model_engine, Pseudonymizer(KEY), AssistantSettings(), ConversationMemory(1800), store)
        task = asyncio.create_task(connector.run(bot))
        try:
            await asyncio.wait_for(connector.ready.wait(), 15)
            assert connector.served and not standin.synced
            await standin.send_dm(FAN, "how do I cancel my subscription?")
            await standin.wait_for_sent(lambda m: m.channel_id == standin.dm_channel_id(FAN), count=2, timeout=20)  # served meanwhile
            for _ in range(150):
                if standin.synced:
                    break
                await asyncio.sleep(0.1)
            assert standin.synced and "human" in standin.commands
            lines = [r.getMessage() for r in caplog.records if r.name == "connectors.discord_connector"]
            assert any("syncing slash commands failed (503)" in line for line in lines), lines
            assert not [r for r in caplog.records if r.levelno >= logging.ERROR], [r.getMessage() for r in caplog.records]
        finally:
            await connector.aclose()
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await bot.drain()
            restore()
