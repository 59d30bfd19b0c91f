"""What the Discord path adds over the bot's pipeline, and how fast slash commands are answered.

Since issue 15 the model runs in its own server (a real `rasa run` with the project's channel,
in Rasa's environment, started as `bot` starts it: `bench/servers.py`); this process (the bot's
side and the stand-in) holds no model, keeps Python's default GIL switch interval and never
calls `gc.freeze` (printed below).

(1) The same fan messages go through `Bot.handle` directly and as Discord DMs (the local
stand-in on loopback -> gateway MESSAGE_CREATE -> discord.py -> the connector -> the bot
-> REST replies back to the stand-in), interleaved so machine noise hits both alike.
(2) Slash command interaction response time (INTERACTION_CREATE dispatched -> the first
callback recorded) while 4 fans keep the model busy. Target: p99 <= 25 ms (issue 15). Real trained
model, real SQLite store; figures only, nothing asserts on time.

    .venv/bin/python bench/discord_latency.py [--rounds 4] [--commands 100]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.pipeline_latency import MESSAGES  # noqa: E402
from bench.servers import ModelServer, bot_side_settings, load_average, start_model_server  # noqa: E402
from bench.slack_latency import line, percentile  # noqa: E402
from bot.config import AssistantSettings, DiscordSettings, HandoffSettings  # noqa: E402
from bot.conversation import ConversationMemory  # noqa: E402
from bot.core import Bot  # noqa: E402
from bot.engine.remote import ModelServerEngine  # noqa: E402
from bot.handoff.desk import ConsoleDesk  # noqa: E402
from bot.messages import Incoming  # noqa: E402
from bot.privacy.crypto import MasterKeys  # noqa: E402
from bot.privacy.pseudonym import Pseudonymizer  # noqa: E402
from bot.privacy.store import TranscriptStore  # noqa: E402
from connectors.discord_connector import DiscordConnector  # noqa: E402
from connectors.router import Router  # noqa: E402
from standins.discord import DiscordStandIn  # noqa: E402

TARGET_MS = 25.0


async def measure(server: ModelServer, rounds: int, commands: int, folder: str) -> None:
    engine = ModelServerEngine([server.url], server.token, timeout_seconds=60)
    store = TranscriptStore.open(f"sqlite:///{folder}/discord.db", None, MasterKeys.parse(MasterKeys.generate()))
    bot = Bot(engine, Pseudonymizer(b"bench-discord-key-0123456789abcdef012"), AssistantSettings(), ConversationMemory(3600), store, handoff=HandoffSettings())
    async with DiscordStandIn(token="bench-token") as standin:
        fans = [10_000 + n for n in range(len(MESSAGES) * rounds * 2 + commands + 10)]
        for fan in fans:
            standin.add_member(fan, f"fan{fan}")
        settings = DiscordSettings(api_base_url=standin.api_base, gateway_url=standin.gateway_url, guild_id=str(standin.guild_id))
        router = Router(ConsoleDesk(lambda message: None))  # /human tickets go nowhere here
        connector = DiscordConnector(settings, "bench-token", router, guild_ready_timeout=0.1)
        router.add_platform("discord", connector)
        task = asyncio.create_task(connector.run(bot))
        await asyncio.wait_for(connector.ready.wait(), 30)
        next_fan = iter(fans)

        async def dm_round_trip(fan: int, text: str, expect: int) -> float:
            channel = standin.dm_channel_id(fan)
            start = time.perf_counter()
            await standin.send_dm(fan, text)
            await standin.wait_for_sent(lambda m: m.channel_id == channel, count=expect, timeout=30)
            return (time.perf_counter() - start) * 1000

        await dm_round_trip(next(next_fan), "hello", 2)  # warm up
        direct: list[float] = []
        through: list[float] = []
        for round_ in range(rounds):
            for index, text in enumerate(MESSAGES):
                fan = f"direct{round_}x{index}"
                await bot.handle(Incoming("discord", fan, "dm", "hi"))
                start = time.perf_counter()
                replies = await bot.handle(Incoming("discord", fan, "dm", text))
                direct.append((time.perf_counter() - start) * 1000)
                fan_id = next(next_fan)
                await dm_round_trip(fan_id, "hi", 2)
                through.append(await dm_round_trip(fan_id, text, 2 + len(replies)))
        print(line("Bot.handle (model over HTTP)", direct))
        print(line("through Discord (MESSAGE_CREATE sent -> last reply recorded)", through))
        print(
            f"added by the Discord path: p50 {percentile(through, 0.5) - percentile(direct, 0.5):.1f} ms, "
            f"p99 {percentile(through, 0.99) - percentile(direct, 0.99):.1f} ms; p50 ratio {percentile(through, 0.5) / percentile(direct, 0.5):.2f}"
        )

        busy = asyncio.Event()

        async def keep_model_busy(fan: int) -> None:
            count = 0
            channel = standin.dm_channel_id(fan)
            while not busy.is_set():
                before = len([m for m in standin.sent if m.channel_id == channel])
                await standin.send_dm(fan, MESSAGES[count % len(MESSAGES)])
                await standin.wait_for_sent(lambda m: m.channel_id == channel, count=before + 1, timeout=30)
                count += 1

        workers = [asyncio.create_task(keep_model_busy(next(next_fan))) for _ in range(4)]
        await asyncio.sleep(0.5)
        responses: list[float] = []
        for index in range(commands):
            start = time.perf_counter()
            interaction = await standin.send_slash(("why", "privacy", "human", "my-data")[index % 4], next(next_fan))
            await standin.wait_for_sent(lambda m: m.kind == "interaction_response" and m.interaction_id == interaction, timeout=30)
            responses.append((time.perf_counter() - start) * 1000)
            await asyncio.sleep(0.02)
        busy.set()
        await asyncio.gather(*workers)
        p99 = percentile(responses, 0.99)
        print("model kept busy by 4 fans messaging in a closed loop meanwhile")
        print(line(f"slash command interaction response while the model is busy ({commands} commands)", responses)
              + f"  target p99 < {TARGET_MS:g} ms, ratio {p99 / TARGET_MS:.2f}")
        await connector.aclose()
        await asyncio.wait_for(task, 10)
    await bot.drain()
    await store.aclose()
    await engine.aclose()


async def main_async(rounds: int, commands: int) -> None:
    print(f"{bot_side_settings()}; load average {load_average()}")
    server = start_model_server()
    try:
        with tempfile.TemporaryDirectory(prefix="bench-discord-") as folder:
            await measure(server, rounds, commands, folder)
    finally:
        server.stop()
    print(f"load average at end: {load_average()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=4, help="passes over the message set")
    parser.add_argument("--commands", type=int, default=100)
    args = parser.parse_args()
    asyncio.run(main_async(args.rounds, args.commands))


if __name__ == "__main__":
    main()
