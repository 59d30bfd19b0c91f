"""Soak: thousands of distinct fans over Slack and Discord, then idle expiry; is memory freed?

A real `bot run` process (SQLite store, both connectors; since issue 15 the model runs in the
model server `bot run` starts as its child, in Rasa's environment) against the local Slack
(Socket Mode) and Discord stand-ins on loopback, with the conversation idle limit shortened
(the model server's trackers get the same limit). Every fan sends one message and must get exactly the AI disclosure and one
answer. The bot's resident memory (VmRSS from /proc) is read after a warm-up ("start"),
throughout the burst ("peak") and once the idle limit has passed and a little traffic
has let the sweeps run ("after expiry"); the model server's the same way, separately (the
bot's figure is the bot's process alone). Target (issue 11): the bot's after expiry within
10 % of the start; nothing lost or duplicated. Figures only; nothing asserts on time.

    .venv/bin/python bench/soak.py [--fans 5000] [--idle-seconds 30] [--concurrency 40]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.servers import children, load_average, rss_mb  # noqa: E402
from bot.privacy.crypto import MasterKeys  # noqa: E402
from bot.testing.discord_standin import DiscordStandIn  # noqa: E402
from bot.testing.privacy_contacts import PRIVACY_CONTACTS  # noqa: E402
from bot.testing.slack_standin import SlackStandIn  # noqa: E402

MODEL = REPO / "rasa_project" / "models" / "fan.tar.gz"
QUESTIONS = ("when is the next episode?", "how do I cancel my subscription?", "my stream keeps buffering", "hello")
DISCORD_BASE = 1_400_000_000_000_000_000


def server_rss_mb(bot_pid: int) -> float:
    """The model server's VmRSS: the bot's child processes (one, `rasa run`)."""
    return sum(rss_mb(pid) for pid in children(bot_pid))


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--fans", type=int, default=5000)
    parser.add_argument("--idle-seconds", type=float, default=30.0)
    parser.add_argument("--concurrency", type=int, default=40)
    parser.add_argument("--engine-timeout", type=float, help="the bot's [engine] timeout_seconds (default: the bot's, 10 s)")
    args = parser.parse_args()
    print(f"load average at start: {load_average()}", flush=True)

    slack_fans = [f"USOAK{n:06d}" for n in range(args.fans // 2)]
    discord_fans = [DISCORD_BASE + n for n in range(args.fans - len(slack_fans))]
    warm_slack, warm_discord = [f"UWARM{n:04d}" for n in range(20)], [DISCORD_BASE - 1 - n for n in range(20)]
    late_slack, late_discord = [f"ULATE{n:04d}" for n in range(20)], [DISCORD_BASE - 100 - n for n in range(20)]

    with tempfile.TemporaryDirectory(prefix="bot-soak-") as folder:
        async with SlackStandIn(bot_token="xoxb-soak", app_token="xapp-soak") as slack, DiscordStandIn(token="soak") as discord:
            for user in (*slack_fans, *warm_slack, *late_slack):
                slack.add_user(user, "fan")
            for user_id in (*discord_fans, *warm_discord, *late_discord):
                discord.add_user(user_id, "fan")
            env = {k: v for k, v in os.environ.items() if not k.startswith(("BOT_", "SLACK_", "DISCORD_"))}
            env.update(PRIVACY_CONTACTS)  # `bot run` with a platform refuses empty contacts
            env.update(
                BOT_PSEUDONYM_KEY="soak-pseudonym-key-0123456789abcdef",
                BOT_MASTER_KEYS=MasterKeys.generate(),
                BOT_STORE_URL=f"sqlite:///{folder}/transcripts.db",
                BOT_STORE_SPOOL_PATH=f"{folder}/spool.db",
                BOT_ASSISTANT_CONVERSATION_IDLE_MINUTES=str(args.idle_seconds / 60),
                BOT_DISCORD_GUILD_ID=str(discord.guild_id),
                SLACK_BOT_TOKEN="xoxb-soak", SLACK_APP_TOKEN="xapp-soak", SLACK_API_BASE_URL=slack.api_base_url,
                **({"BOT_ENGINE_TIMEOUT_SECONDS": str(args.engine_timeout)} if args.engine_timeout else {}),
                DISCORD_TOKEN="soak", DISCORD_API_BASE_URL=discord.api_base, DISCORD_GATEWAY_URL=discord.gateway_url,
            )
            subprocess.run([sys.executable, "-m", "bot", "db", "init"], cwd=REPO, env=env, check=True, capture_output=True)
            # A file, not a pipe: nobody reads a pipe until the end, and once it is full the bot (and
            # its model server, which shares its stderr) would block on the next log line.
            log = open(f"{folder}/bot-stderr.txt", "w+b")
            process = subprocess.Popen(
                [sys.executable, "-m", "bot", "--model", str(MODEL), "run"], cwd=REPO, env=env,
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log,
            )
            try:
                await slack.wait_for_socket(180)
                await discord.wait_until_connected(60)
                for _ in range(600):
                    if "human" in discord.commands:
                        break
                    await asyncio.sleep(0.1)

                replies: Counter[str] = Counter()

                def count(message: object) -> None:
                    pass

                async def slack_fan(user: str, text: str) -> None:
                    await slack.send_dm(user, text)

                async def discord_fan(user_id: int, text: str) -> None:
                    await discord.send_dm(user_id, text)

                async def burst(jobs: list[Callable[[], Awaitable[None]]]) -> None:
                    gate = asyncio.Semaphore(args.concurrency)

                    async def one(job: Callable[[], Awaitable[None]]) -> None:
                        async with gate:
                            await job()

                    await asyncio.gather(*(one(job) for job in jobs))

                def jobs(slack_users: list[str], discord_users: list[int]) -> list[Callable[[], Awaitable[None]]]:
                    made: list[Callable[[], Awaitable[None]]] = []
                    for index in range(max(len(slack_users), len(discord_users))):
                        text = QUESTIONS[index % len(QUESTIONS)]
                        if index < len(slack_users):
                            made.append(lambda u=slack_users[index], t=text: slack_fan(u, t))
                        if index < len(discord_users):
                            made.append(lambda u=discord_users[index], t=text: discord_fan(u, t))
                    return made

                async def settled(expected: int, timeout: float) -> None:
                    deadline = time.monotonic() + timeout
                    while time.monotonic() < deadline and len(slack.sent) + len(discord.sent) < expected:
                        await asyncio.sleep(0.5)
                    await asyncio.sleep(3)

                await burst(jobs(warm_slack, warm_discord))
                await settled(2 * 40, 120)
                await asyncio.sleep(5)
                start = rss_mb(process.pid)
                server_start = server_rss_mb(process.pid)
                before_sent = len(slack.sent) + len(discord.sent)

                peak, server_peak = start, server_start
                sampling = True

                async def sample() -> None:
                    nonlocal peak, server_peak
                    while sampling:
                        peak = max(peak, rss_mb(process.pid))
                        server_peak = max(server_peak, server_rss_mb(process.pid))
                        await asyncio.sleep(0.5)

                sampler = asyncio.create_task(sample())
                began = time.monotonic()
                await burst(jobs(slack_fans, discord_fans))
                await settled(before_sent + 2 * args.fans, 900)
                elapsed = time.monotonic() - began
                sampling = False
                await sampler

                for message in slack.sent:
                    replies[f"slack:{message.channel}"] += 1
                for message in discord.sent:
                    replies[f"discord:{message.channel_id}"] += 1
                slack_counts = [replies[f"slack:{slack.dm_channel(u)}"] for u in slack_fans]
                discord_counts = [replies[f"discord:{discord.dm_channel_id(u)}"] for u in discord_fans]
                every = slack_counts + discord_counts
                lost = sum(1 for n in every if n < 2)
                duplicated = sum(1 for n in every if n > 2)
                # Since issue 15 a fan can also get the honest "something went wrong" reply (the
                # model server too slow: the bot's [engine] timeout) or "still starting": answered,
                # but not by the model. Counted apart.
                soak_channels = {slack.dm_channel(u) for u in slack_fans} | {discord.dm_channel_id(u) for u in discord_fans}
                # The whole recorded message (text, blocks, embeds), as the platform would show it.
                shown = [repr(m) for m in slack.sent if m.channel in soak_channels]
                shown += [repr(m) for m in discord.sent if m.channel_id in soak_channels]
                engine_errors = sum(1 for t in shown if "something went wrong on my side" in t)
                starting = sum(1 for t in shown if "still starting up" in t)

                await asyncio.sleep(args.idle_seconds + 35)  # the idle limit, then a periodic sweep
                await burst(jobs(late_slack, late_discord))  # a little traffic: the on-access sweeps run
                await asyncio.sleep(10)
                after = rss_mb(process.pid)
                server_after = server_rss_mb(process.pid)
            finally:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(60)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
                log.seek(0)
                stderr = log.read()
                log.close()

    print(f"soak: {args.fans} fans ({len(slack_fans)} Slack, {len(discord_fans)} Discord) in {elapsed:.0f} s, "
          f"{args.fans / elapsed:.1f} fans/s; idle limit {args.idle_seconds:g} s")
    print(f"  messages lost (fewer than disclosure + answer): {lost}; duplicated (more): {duplicated}")
    print(f"  answers that were the honest engine error (model server slower than the bot's timeout): {engine_errors}; "
          f"'still starting': {starting}; so answered by the model: {args.fans - engine_errors - starting}")
    print(f"  bot RSS: start {start:.0f} MB, peak {peak:.0f} MB, after expiry {after:.0f} MB "
          f"(after/start {after / start:.3f}; target <= 1.10)")
    print(f"  model server RSS (the bot's child, separately): start {server_start:.0f} MB, peak {server_peak:.0f} MB, "
          f"after expiry {server_after:.0f} MB (after/start {server_after / server_start:.3f})")
    print(f"  load average at end: {load_average()}")
    warnings = [line for line in stderr.decode(errors="replace").splitlines() if " WARNING " in line or " ERROR " in line]
    print(f"  bot and model server stderr: {len(stderr)} bytes, {len(warnings)} WARNING/ERROR lines")
    kinds = Counter(re.sub(r"[0-9.]+", "N", line.split(" ", 2)[-1])[:160] for line in warnings)
    for kind, number in kinds.most_common(5):
        print(f"    {number} x {kind}")
    if process.returncode not in (0, -signal.SIGTERM):
        print(f"  bot exited {process.returncode}: {stderr.decode(errors='replace')[-500:]}")


if __name__ == "__main__":
    asyncio.run(main())
