"""Command line: `python -m standins.slack --port 3001`, a stand-in to point a real bot process at."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from typing import Optional

from .server import SlackStandIn

# ---------------------------------------------------------------------- command line


async def _serve(args: argparse.Namespace) -> None:
    standin = SlackStandIn(mode="http" if args.http_target else "socket", http_target=args.http_target)
    # The walkthrough's people and desk: a fan, a moderator, and the desk channel the app was
    # invited to (without it the bot could not post tickets and `!claim` would be refused).
    standin.add_user("U1", "fan")
    standin.add_user("UMOD", "moderator")
    standin.add_channel("CDESK", members=["UMOD", standin.bot_user_id], name="mod-desk")
    await standin.start(port=args.port)
    url = standin.url
    print(
        f"Slack stand-in on {url} ({standin.mode} mode). Set, then run the bot:\n"
        f"  export SLACK_API_BASE_URL={standin.api_base_url}\n"
        f"  export SLACK_BOT_TOKEN={standin.bot_token}\n"
        f"  export SLACK_APP_TOKEN={standin.app_token}\n"
        f"  export SLACK_SIGNING_SECRET={standin.signing_secret}\n"
        "  export BOT_HANDOFF_DESK=slack:CDESK   # tickets go to the stand-in's desk channel, moderator UMOD\n"
        "Talk to it:\n"
        f"  curl -s {url}/_standin/dm -d '{{\"user\": \"U1\", \"text\": \"hi\"}}'\n"
        f"  curl -s {url}/_standin/command -d '{{\"user\": \"U1\", \"command\": \"/human\", \"text\": \"\"}}'\n"
        f"  curl -s {url}/_standin/message -d '{{\"user\": \"UMOD\", \"channel\": \"CDESK\", \"thread_ts\": \"TS\", \"text\": \"hello\"}}'\n"
        f"  curl -s {url}/_standin/sent\n"
        "Ctrl-C stops it.",
        flush=True,
    )
    try:
        await asyncio.Event().wait()
    finally:
        await standin.aclose()


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m standins.slack", description="A local stand-in for Slack: Web API, Socket Mode, Events API (HTTP) and response URLs.")
    parser.add_argument("--port", type=int, default=3001)
    parser.add_argument("--http-target", metavar="URL", help="HTTP mode: POST signed events here (default: Socket Mode)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        asyncio.run(_serve(args))
    except KeyboardInterrupt:
        pass
    except OSError as error:  # the port is taken, or the host cannot be bound: one line
        print(f"standins.slack: cannot listen on port {args.port}: {error.strerror}", file=sys.stderr)
        raise SystemExit(2) from None
