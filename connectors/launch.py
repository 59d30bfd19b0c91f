"""`bot run` with platforms: every connector whose tokens are set, one desk, one bot.

Platform tokens switch a connector on; with none set, `bot run` is the console chat.
`[slack] enabled = false` / `[discord] enabled = false` (`bot run --no-slack`, `--no-discord`)
keep a worker off a platform whose tokens are set, so workers can split the platforms.
Real deployments need real keys: the generated dev keys are for the console only.

Across several workers on one PostgreSQL, the desk's background work runs in one of them
(the `background-jobs` leader, `bot.leader`) and the Discord gateway in one of them
(`connectors.discord_gateway`). With the desk on Discord both are the same lock: only the
worker connected to Discord can post to that desk.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Optional, TextIO

from bot import heap
from bot.config import Config, ConfigError
from bot.core import Bot
from bot.handoff.actions import DeskLineError, ModeratorAction
from bot.handoff.desk import ConsoleDesk
from bot.leader import DISCORD_GATEWAY, JOBS, Leadership, SoleProcess, hold, leader_lock
from connectors.base import Connector
from connectors.console import DESK_FORMAT, desk_line, parse_desk_line, render
from connectors.router import Router
from connectors.supervise import supervise

logger = logging.getLogger(__name__)

TIMEOUT_CHECK_SECONDS = 30.0
#: How often each process lets go of what it holds of idle fans (`_release_idle`): often
#: enough that a burst's rate-limit buckets (one per Discord fan) do not pile up.
RELEASE_SECONDS = 10.0


@dataclass(frozen=True)
class WorkerLocks:
    """The leader locks of one `bot run` process (see the module)."""

    jobs: Leadership
    discord_gateway: Leadership

    def resign(self) -> None:
        """Stopping: neither lock is taken any more (`Leadership.resign`)."""
        self.jobs.resign()
        self.discord_gateway.resign()

    async def aclose(self) -> None:
        await self.jobs.aclose()
        if self.discord_gateway is not self.jobs:
            await self.discord_gateway.aclose()


def worker_locks(config: Config) -> WorkerLocks:
    """Advisory locks on PostgreSQL, always held on SQLite (one process per store)."""
    gateway = leader_lock(config.store.url, DISCORD_GATEWAY)
    jobs = gateway if config.handoff.desk.startswith("discord:") else leader_lock(config.store.url, JOBS)
    return WorkerLocks(jobs, gateway)


def _single_process_locks() -> WorkerLocks:
    return WorkerLocks(SoleProcess(JOBS), SoleProcess(DISCORD_GATEWAY))


@dataclass
class Platforms:
    """The connectors to run and where the desk is, before anything connects."""

    connectors: list[Connector] = field(default_factory=list)
    router: Router = field(default_factory=Router)
    console_desk: Optional[ConsoleDeskInput] = None
    #: Given up (`resign`) as soon as the process starts stopping.
    locks: Optional[WorkerLocks] = None


def check_platform_choice(config: Config) -> None:
    """One line for a worker told to serve nothing, or to run without its desk's platform."""
    if not config.slack.enabled and not config.discord.enabled:
        raise ConfigError(
            "slack.enabled and discord.enabled are both false (--no-slack --no-discord): this worker would serve "
            "no platform; use `bot chat` for the console"
        )
    desk_platform = config.handoff.desk.partition(":")[0]
    for platform, settings, flag in (("slack", config.slack, "--no-slack"), ("discord", config.discord, "--no-discord")):
        if desk_platform == platform and not settings.enabled:
            raise ConfigError(
                f"handoff.desk is {config.handoff.desk!r} but {platform} is switched off on this worker "
                f"({flag} or {platform}.enabled = false): a worker needs its desk's platform"
            )


def configured_platforms(
    config: Config, environ: Mapping[str, str] = os.environ, locks: Optional[WorkerLocks] = None, **overrides: Any
) -> Platforms:
    """Builds (without connecting) every enabled connector whose token is set; a one-line
    `ConfigError` when the desk names a platform that is not configured or switched off.
    Discord runs under `locks.discord_gateway` (`connectors.discord_gateway`)."""
    check_platform_choice(config)
    locks = locks or _single_process_locks()
    platforms = Platforms(router=Router(expiry_seconds=config.assistant.reply_expiry_seconds), locks=locks)
    desk_platform, _, desk_channel = config.handoff.desk.partition(":")

    from connectors.slack_connector import SlackConnector, SlackTokens

    slack_tokens = SlackTokens.from_env(environ, config.slack) if config.slack.enabled else None
    if slack_tokens is not None:
        slack = SlackConnector(
            config.slack, slack_tokens, platforms.router, desk_channel if desk_platform == "slack" else None, **overrides.get("slack", {})
        )
        platforms.connectors.append(slack)
        platforms.router.add_platform(slack.name, slack)
        platforms.router.desk = slack.desk or platforms.router.desk

    discord_token = environ.get("DISCORD_TOKEN", "").strip() if config.discord.enabled else ""
    if discord_token:
        from connectors.discord_connector import DiscordConnector
        from connectors.discord_gateway import GatewayHolder

        def discord_connector() -> DiscordConnector:
            return DiscordConnector(
                config.discord, discord_token, platforms.router, desk_channel if desk_platform == "discord" else None,
                **overrides.get("discord", {}),
            )

        # The second connector sends over REST while another worker holds the gateway.
        discord = GatewayHolder(discord_connector(), locks.discord_gateway, rest=discord_connector())
        platforms.connectors.append(discord)
        platforms.router.add_platform(discord.name, discord)
        platforms.router.desk = discord.desk or platforms.router.desk

    if desk_platform in ("slack", "discord") and platforms.router.desk is None and platforms.connectors:
        variable = "SLACK_BOT_TOKEN" if desk_platform == "slack" else "DISCORD_TOKEN"
        raise ConfigError(f"handoff.desk is {config.handoff.desk!r} but {variable} is not set, so there is no desk")
    if desk_platform == "console" and platforms.connectors:
        platforms.console_desk = ConsoleDeskInput(platforms.router, config.handoff.moderators)
        platforms.router.desk = platforms.console_desk.desk
    return platforms


class ConsoleDeskInput:
    """The console desk beside platform fans: tickets print on stdout, and a moderator
    types `MODERATOR_ID [#TICKET] TEXT` lines on stdin (TEXT: /claim NAME, a reply, ...);
    the `desk>` prefix that `bot chat` needs is accepted here too, so one line works in both.
    Its rule for who may act: the id is in `[handoff] moderators` (this desk's list only)."""

    name = "console-desk"
    max_message_chars = 4000

    def __init__(
        self, router: Router, moderators: tuple[str, ...] = (), stdin: TextIO = sys.stdin, stdout: TextIO = sys.stdout
    ) -> None:
        self._router = router
        self._moderators = moderators
        self._stdin = stdin
        self._stdout = stdout
        self.desk: ConsoleDesk = ConsoleDesk(lambda message: print(render(message), file=self._stdout, flush=True))

    def parse(self, line: str) -> Optional[ModeratorAction]:
        """The line as a typed action, parsed once here; None when it is not one (raises
        `DeskLineError` for an unknown desk command)."""
        prefixed = desk_line(line)
        return parse_desk_line(line if prefixed is None else prefixed, self._moderators)

    async def run(self, bot: Bot) -> None:
        bot.handoff.use_desk_copies(self.desk)
        while True:
            line = await asyncio.to_thread(self._stdin.readline)
            if not line:
                return  # end of input: the platforms keep running
            try:
                action = self.parse(line)
            except DeskLineError as error:
                print(f"desk: {error}", file=self._stdout, flush=True)
                continue
            if action is None:
                print(f"desk: expected {DESK_FORMAT}", file=self._stdout, flush=True)
                continue
            await self._router.deliver(await bot.moderate(action))

    async def aclose(self) -> None:
        return None


async def _watch_timeouts(bot: Bot, router: Router, every_seconds: float, jobs: Optional[Leadership] = None) -> None:
    """Periodic desk work: claim-timeout and silence notices, and desk messages queued for
    deletion by `bot forget`, by retention, or by an erasure a crash interrupted; done by the
    `jobs` leader only (one process across workers), as is the sweep of idle conversation
    state and old delivery keys (shared tables since issue 16)."""
    while True:
        await asyncio.sleep(every_seconds)
        if jobs is not None and not jobs.leading:
            continue
        try:
            await router.deliver(await bot.expire_handoffs())
        except Exception:
            logger.exception("handoff timeout check failed; will retry")
        try:
            await bot.handoff.remove_pending_desk_copies()
        except Exception:
            logger.exception("removing queued desk messages failed; will retry")
        await bot.expire_idle()


async def _release_idle(bot: Bot, connectors: Sequence[Any], every_seconds: float) -> None:
    """In every process, leading or not (each holds its own): what is held in memory of fans
    idle past the conversation idle limit goes (the store's caches, discord.py's rate-limit
    buckets), and when anything went the heap is trimmed (`bot.heap`), so the resident size
    comes back down after a burst (issue 11, `bench/soak.py`)."""
    while True:
        await asyncio.sleep(every_seconds)
        released = 0
        try:  # one part failing stops no other
            released += await bot.release_idle()
        except Exception as error:
            logger.error("releasing idle fans' memory failed (%s); will retry", type(error).__name__)
        for connector in connectors:
            try:
                released += connector.release_idle() if hasattr(connector, "release_idle") else 0
            except Exception as error:
                logger.error("releasing idle fans' memory failed (%s); will retry", type(error).__name__)
        if released:
            heap.trim()


def _stop_on_signals(stop: asyncio.Event) -> None:
    """SIGTERM (a service manager) and SIGINT (Ctrl-C) stop serving cleanly: replies being
    worked on go out and queued transcript writes reach the database."""
    loop = asyncio.get_running_loop()
    for signal_number in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signal_number, stop.set)


async def serve(
    bot: Bot,
    platforms: Platforms,
    timeout_check_seconds: float = TIMEOUT_CHECK_SECONDS,
    stop: Optional[asyncio.Event] = None,
    jobs: Optional[Leadership] = None,
) -> None:
    """Runs every connector, each supervised (`connectors.supervise`: a crash restarts that
    connector alone), until one fails for good (a start-up or configuration error) or stops,
    or `stop` is set (by SIGTERM or SIGINT by default); then closes them all cleanly. The
    desk's periodic work runs while this process holds `jobs` (always, when not given)."""
    if stop is None:
        stop = asyncio.Event()
        _stop_on_signals(stop)
    platforms.router.share_notices(bot.deliveries.first_time)  # one undeliverable notice across processes
    platforms.router.on_unreachable = bot.events.unreachable  # counted in `bot report` (bot.privacy.events)
    runners: list[Any] = list(platforms.connectors)
    tasks = [asyncio.create_task(supervise(connector, bot), name=f"connector-{connector.name}") for connector in runners]
    stopping = asyncio.create_task(stop.wait())
    jobs = jobs or SoleProcess(JOBS)
    background = [
        stopping,
        asyncio.create_task(hold(jobs), name="jobs-leader"),
        asyncio.create_task(_watch_timeouts(bot, platforms.router, timeout_check_seconds, jobs)),
        asyncio.create_task(_release_idle(bot, runners, min(RELEASE_SECONDS, timeout_check_seconds)), name="release-idle"),
    ]
    if platforms.console_desk is not None:
        background.append(asyncio.create_task(platforms.console_desk.run(bot)))
    try:
        done, _ = await asyncio.wait([*tasks, stopping], return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            if task is not stopping:
                task.result()  # re-raises a connector's start-up error (bad token, port in use)
        if stopping in done:
            logger.info("stopping on a signal: finishing replies in flight")
    finally:
        jobs.resign()  # no lock is taken while stopping: a standby must not take over this late
        if platforms.locks is not None:
            platforms.locks.resign()
        for task in background:
            task.cancel()
        for connector in runners:
            try:
                await connector.aclose()
            except Exception:
                logger.exception("closing the %s connector failed", connector.name)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, *background, return_exceptions=True)
        await platforms.router.aclose()
        await bot.drain()
