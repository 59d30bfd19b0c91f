"""Command line: `python -m standins.discord --port 3002`, a stand-in to point a real bot process at."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence
from typing import Optional

from .model import DEFAULT_TOKEN
from .server import DiscordStandIn

# --------------------------------------------------------------------------------------
# Command line: a stand-in to point a real bot process at
# --------------------------------------------------------------------------------------


def _print_banner(standin: DiscordStandIn) -> None:
    base = standin.base_url
    print(f"Discord stand-in listening on {base}", flush=True)
    print("Point the bot at it (then `make run` or `bot run`):")
    print(f"  export DISCORD_TOKEN={standin.token}")
    print(f"  export DISCORD_API_BASE_URL={standin.api_base}")
    print(f"  export DISCORD_GATEWAY_URL={standin.gateway_url}")
    print(f"  export BOT_DISCORD_GUILD_ID={standin.guild_id}   # slash commands sync to the stand-in guild")
    print("Then be a fan (user ids are made up; unknown ones join the guild):")
    print(f"""  curl -s -X POST {base}/_standin/dm -d '{{"user": 4242, "content": "hi"}}'""")
    print(f"""  curl -s -X POST {base}/_standin/message -d '{{"user": 4242, "content": "hi", "mention_bot": true}}'""")
    print(f"""  curl -s -X POST {base}/_standin/slash -d '{{"user": 4242, "name": "human"}}'""")
    print(f"""  curl -s -X POST {base}/_standin/click -d '{{"user": 4242, "custom_id": "...", "message_id": "..."}}'""")
    print(f"  curl -s {base}/_standin/sent     # what the bot sent", flush=True)


async def _serve(args: argparse.Namespace) -> None:
    standin = DiscordStandIn(token=args.token, heartbeat_interval=args.heartbeat_interval,
                             response_deadline=None if args.no_deadline else 3.0)
    await standin.start(port=args.port, host=args.host)
    _print_banner(standin)
    shown = 0
    try:
        while True:
            await asyncio.sleep(0.2)
            if args.echo:
                for item in standin.sent[shown:]:
                    print(f"[bot -> {item.kind} channel {item.channel_id}] {item.content or ''}", flush=True)
            shown = len(standin.sent)
    finally:
        await standin.aclose()


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m standins.discord",
                                     description="A local stand-in for Discord's gateway and REST API.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=3002)
    parser.add_argument("--token", default=DEFAULT_TOKEN)
    parser.add_argument("--heartbeat-interval", type=int, default=41250, help="milliseconds")
    parser.add_argument("--echo", action="store_true", help="print what the bot sends (message text) to stdout")
    parser.add_argument("--no-deadline", action="store_true", help="no 3 s limit for the first interaction response")
    parser.add_argument("--log-level", default="WARNING")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    try:
        asyncio.run(_serve(args))
    except KeyboardInterrupt:
        pass
    except OSError as error:  # the port is taken, or the host cannot be bound: one line
        print(f"standins.discord: cannot listen on port {args.port}: {error.strerror}", file=sys.stderr)
        raise SystemExit(2) from None
    return 0
