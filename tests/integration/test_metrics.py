"""`/metrics` of a real running `bot run` (Discord through the real discord.py client and the
stand-in, the real model server): counts by platform and kind, the handoff queue read from
the database, latency histograms, and no fan identity anywhere in the exposition."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from bot.engine.child import free_port
from bot.privacy.crypto import MasterKeys
from bot.privacy.pseudonym import Pseudonymizer
from bot.testing.privacy_contacts import PRIVACY_CONTACTS
from standins.discord import DiscordStandIn
from tests.integration.conftest import MODEL, REPO, ModelServer
from tests.integration.processes import LineReader

KEY = "metrics-test-pseudonym-key-0123456789abcdef"
FAN = 7171717


def _get(url: str) -> tuple[int, str, str]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.status, response.headers["Content-Type"], response.read().decode()


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def test_metrics_of_a_running_bot_count_messages_handoffs_and_latency_without_fan_identity(
    model_server: ModelServer, tmp_path: Path
) -> None:
    async with DiscordStandIn(token="metrics-token") as discord:
        discord.add_member(FAN, "fan")
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("BOT_", "SLACK_", "DISCORD_"))}
        env.update(
            BOT_PSEUDONYM_KEY=KEY, BOT_MASTER_KEYS=MasterKeys.generate(), BOT_STORE_URL=f"sqlite:///{tmp_path}/transcripts.db",
            BOT_ENGINE_URL=model_server.url, BOT_ENGINE_TOKEN=model_server.token, BOT_DISCORD_GUILD_ID=str(discord.guild_id),
            BOT_LOGGING_LEVEL="INFO", BOT_HEALTH_PORT=str(port), DISCORD_TOKEN="metrics-token",
            DISCORD_API_BASE_URL=discord.api_base, DISCORD_GATEWAY_URL=discord.gateway_url, **PRIVACY_CONTACTS,
        )
        init = await asyncio.create_subprocess_exec(sys.executable, "-m", "bot", "db", "init", cwd=REPO, env=env)
        assert await init.wait() == 0
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", "--model", str(MODEL), "run", cwd=REPO, env=env,
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        )
        assert process.stderr is not None
        log = LineReader(process.stderr)
        try:
            await log.wait_for("slash commands synced", 120)
            await discord.send_dm(FAN, "hello there")
            await discord.wait_for_sent(lambda m: m.channel_id == discord.dm_channel_id(FAN), count=2, timeout=60)
            await discord.send_slash("human", FAN)
            await discord.wait_for_sent(lambda m: m.kind == "followup" and "moderator" in (m.content or "").lower(), timeout=60)
            status, content_type, text = await asyncio.to_thread(_get, f"http://127.0.0.1:{port}/metrics")
        finally:
            process.send_signal(signal.SIGTERM)
            await asyncio.wait_for(process.wait(), 60)

    assert status == 200 and content_type.startswith("text/plain; version=0.0.4")
    samples = _samples(text)
    assert samples[("fan_assistant_messages_total", (("kind", "disclosure"), ("platform", "discord")))] == 1
    sent = sum(v for (name, labels), v in samples.items() if name == "fan_assistant_messages_total")
    assert sent >= 3  # the disclosure, the answer (or fallback), the handoff notice
    assert samples[("fan_assistant_handoffs_total", (("step", "opened"),))] == 1
    assert samples[("fan_assistant_handoff_queue_length", ())] == 1  # read from the database at scrape
    assert samples[("fan_assistant_reply_latency_seconds_count", ())] == 2
    assert samples[("fan_assistant_ack_latency_seconds_count", (("platform", "discord"),))] == 1  # the slash command's deferral
    assert samples[("fan_assistant_model_server_errors_total", ())] == 0
    label_names = {name for (_, labels) in samples for name, _ in labels}
    assert label_names <= {"platform", "kind", "step", "le"}  # bounded labels only: never an intent or a fan
    for secret in (str(FAN), Pseudonymizer(KEY.encode()).fan("discord", str(FAN)), "hello there"):
        assert secret not in text
