"""`bot run` as an operator runs it: a real process with Slack and Discord tokens in the
environment, both platforms served side by side (local stand-ins), stopped by SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import pytest

from bot.privacy.crypto import MasterKeys
from bot.testing.privacy_contacts import PRIVACY_CONTACTS
from standins.discord import DiscordStandIn
from standins.slack import SlackStandIn
from tests.integration.conftest import MODEL, REPO
from tests.integration.processes import LineReader

pytestmark = pytest.mark.integration
DISCORD_FAN, SLACK_FAN, MODERATOR, MOD_ROLE, DESK_ID = 5151, "UFAN9", 5252, 888, 1300000000000000009


async def test_bot_run_serves_slack_and_discord_with_a_discord_desk(trained_model: Path, tmp_path: Path) -> None:
    async with SlackStandIn(bot_token="xoxb-run", app_token="xapp-run") as slack, DiscordStandIn(token="run-token") as discord:
        discord.add_role(MOD_ROLE, "moderators")
        discord.add_channel(DESK_ID, "mod-desk")
        discord.add_member(DISCORD_FAN, "fan")
        discord.add_member(MODERATOR, "Kim", roles=[MOD_ROLE])
        env = {k: v for k, v in os.environ.items() if not k.startswith(("BOT_", "SLACK_", "DISCORD_"))}
        env.update(
            BOT_PSEUDONYM_KEY="run-test-pseudonym-key-0123456789abcdef",
            **PRIVACY_CONTACTS,
            BOT_MASTER_KEYS=MasterKeys.generate(),
            BOT_STORE_URL=f"sqlite:///{tmp_path}/transcripts.db",
            BOT_HANDOFF_DESK=f"discord:{DESK_ID}",
            BOT_DISCORD_MODERATOR_ROLE=str(MOD_ROLE),
            BOT_DISCORD_GUILD_ID=str(discord.guild_id),
            BOT_LOGGING_LEVEL="INFO",
            SLACK_BOT_TOKEN="xoxb-run",
            SLACK_APP_TOKEN="xapp-run",
            SLACK_API_BASE_URL=slack.api_base_url,
            DISCORD_TOKEN="run-token",
            DISCORD_API_BASE_URL=discord.api_base,
            DISCORD_GATEWAY_URL=discord.gateway_url,
        )
        init = await asyncio.create_subprocess_exec(sys.executable, "-m", "bot", "db", "init", cwd=REPO, env=env)
        assert await init.wait() == 0  # a deployment never creates its store by itself
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", "--model", str(MODEL), "run",
            cwd=REPO, env=env, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        )
        stderr_lines = LineReader(process.stderr)
        try:
            # The bot serves commands at once; the embedded model server loads beside it.
            await stderr_lines.wait_for("dialogue model ready")
            await slack.wait_for_socket(120)
            for _ in range(600):
                if "human" in discord.commands:
                    break
                await asyncio.sleep(0.1)
            assert "human" in discord.commands, "slash commands were synced"

            await slack.send_dm(SLACK_FAN, "how do I reset my password?")
            await slack.wait_for_sent(lambda m: m.channel == slack.dm_channel(SLACK_FAN), count=2, timeout=30)
            await discord.send_dm(DISCORD_FAN, "the stream keeps buffering")
            await discord.wait_for_sent(lambda m: m.channel_id == discord.dm_channel_id(DISCORD_FAN), count=2, timeout=30)

            # A Slack fan's ticket lands on the Discord desk; the moderator's reply comes back to Slack.
            await slack.send_command("/human", "", SLACK_FAN)
            ticket = (await discord.wait_for_sent(lambda m: m.channel_id == DESK_ID and "Ticket #" in (m.content or ""), timeout=30))[0]
            assert "fan on slack" in ticket.content
            await discord.click_button(MODERATOR, "ticket:claim:1", ticket.message_id, DESK_ID)
            await slack.wait_for_sent(lambda m: "Kim" in (m.text or ""), timeout=30)
            for _ in range(100):
                if discord.threads:
                    break
                await asyncio.sleep(0.05)
            await discord.send_guild_message(MODERATOR, int(discord.threads[-1]["id"]), "Hi from Discord")
            await slack.wait_for_sent(lambda m: "Hi from Discord" in (m.text or ""), timeout=30)
        finally:
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
            await asyncio.wait_for(process.wait(), 60)
        log = await stderr_lines.finish()
        assert process.returncode == 0, log
        # INFO logging carries no message text, names or platform ids.
        for private in ("reset my password", "buffering", "Hi from Discord", SLACK_FAN, str(DISCORD_FAN), "Kim"):
            assert private not in log
