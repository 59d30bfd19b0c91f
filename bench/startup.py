"""Issue 15: how soon `bot run` serves commands, and how much memory the bot itself holds.

A real `bot run` (SQLite store, Slack connector in Socket Mode against the local stand-in on
loopback, no `[engine] url`: the bot starts the model server as its child, as by default).
From the moment the process is started, a `/privacy` slash command is sent every 20 ms once the
stand-in's socket is connected, until one is acked and its reply recorded: "start to serving
commands" (target <= 2 s). The bot prints when the model server is ready ("dialogue model ready
after X s", its own measure of the child's start) and a fan message then gets a model answer.
VmRSS of the bot's process alone (target <= 150 MB) and of its model server child, read from
/proc after the model is ready and 20 fan messages were answered. Figures only.

    .venv/bin/python bench/startup.py [--runs 2]
"""

from __future__ import annotations

import argparse
import asyncio
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.servers import MODEL, children, environ_without_bot, load_average, rss_mb  # noqa: E402
from bot.privacy.crypto import MasterKeys  # noqa: E402
from bot.testing.privacy_contacts import PRIVACY_CONTACTS  # noqa: E402
from standins.slack import SlackStandIn  # noqa: E402

QUESTIONS = ("when is the next episode?", "how do I cancel my subscription?", "my stream keeps buffering", "hello")


async def one_run() -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as folder:
        async with SlackStandIn(bot_token="xoxb-start", app_token="xapp-start") as slack:
            for n in range(40):
                slack.add_user(f"UFAN{n:04d}", "fan")
            env = environ_without_bot()
            env.update(PRIVACY_CONTACTS)  # `bot run` with a platform refuses empty contacts
            env.update(
                BOT_PSEUDONYM_KEY="startup-pseudonym-key-0123456789abcdef",
                BOT_MASTER_KEYS=MasterKeys.generate(),
                BOT_STORE_URL=f"sqlite:///{folder}/transcripts.db",
                BOT_STORE_SPOOL_PATH=f"{folder}/spool.db",
                SLACK_BOT_TOKEN="xoxb-start", SLACK_APP_TOKEN="xapp-start", SLACK_API_BASE_URL=slack.api_base_url,
            )
            bot = [str(REPO / ".venv" / "bin" / "python"), "-m", "bot"]
            subprocess.run([*bot, "db", "init"], cwd=REPO, env=env, check=True, capture_output=True)
            log = open(f"{folder}/stderr.txt", "w+")
            started = time.monotonic()
            process = subprocess.Popen(
                [*bot, "--model", str(MODEL), "run"], cwd=REPO, env=env,
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log,
            )
            try:
                await slack.wait_for_socket(60)
                socket_at = time.monotonic() - started
                user = "UFAN0000"
                channel = slack.dm_channel(user)
                while True:
                    delivery = await slack.send_command("/privacy", "", user)
                    if delivery.acked:
                        break
                    await asyncio.sleep(0.02)
                acked_at = time.monotonic() - started
                await slack.wait_for_sent(lambda m: m.channel == channel, count=1, timeout=30)
                answered_at = time.monotonic() - started
                rss_serving = rss_mb(process.pid)
                ready_line = None
                while ready_line is None and time.monotonic() - started < 240:
                    log.seek(0)
                    ready_line = re.search(r"dialogue model ready after ([0-9.]+) s", log.read())
                    await asyncio.sleep(0.1)
                model_ready_at = time.monotonic() - started
                for n in range(1, 21):
                    fan = f"UFAN{n:04d}"
                    fan_channel = slack.dm_channel(fan)
                    await slack.send_dm(fan, QUESTIONS[n % len(QUESTIONS)])
                    await slack.wait_for_sent(lambda m, c=fan_channel: m.channel == c, count=2, timeout=60)
                await asyncio.sleep(1)
                child = children(process.pid)
                figures = {
                    "socket": socket_at, "acked": acked_at, "answered": answered_at,
                    "model_ready_reported": float(ready_line.group(1)) if ready_line else float("nan"),
                    "model_ready_seen": model_ready_at,
                    "bot_rss_serving": rss_serving, "bot_rss": rss_mb(process.pid),
                    "server_rss": sum(rss_mb(pid) for pid in child), "children": float(len(child)),
                }
            finally:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(30)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
                log.close()
    return figures


async def main_async(runs: int) -> None:
    print(f"load average at start: {load_average()}")
    for number in range(1, runs + 1):
        f = await one_run()
        print(f"run {number}: socket connected {f['socket']:.2f} s; first slash command acked {f['acked']:.2f} s, "
              f"its reply recorded {f['answered']:.2f} s (target <= 2 s, ratio {f['answered'] / 2:.2f})")
        print(f"  model server (child) ready after {f['model_ready_reported']:.1f} s by the bot's count "
              f"(seen here at {f['model_ready_seen']:.1f} s from the bot's start)")
        print(f"  bot process RSS: {f['bot_rss_serving']:.0f} MB when first serving, {f['bot_rss']:.0f} MB after 20 fan "
              f"messages (target <= 150 MB, ratio {f['bot_rss'] / 150:.2f}); model server {f['server_rss']:.0f} MB "
              f"({f['children']:.0f} child process)")
    print(f"load average at end: {load_average()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2)
    args = parser.parse_args()
    asyncio.run(main_async(args.runs))


if __name__ == "__main__":
    main()
