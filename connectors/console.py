"""The terminal chat: the dependency-free reference connector.

Works with or without a terminal: end of input ends the chat cleanly, so
`echo hello | bot chat` and `make run < /dev/null` both exit 0. The same terminal is the
moderator desk: a line starting with `desk>` is a moderator's (`desk> MODERATOR_ID
[#TICKET] TEXT`, as on `bot run`'s console desk), every other line is the fan's.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Optional, TextIO

from bot.core import Bot
from bot.disclosure import CONSOLE_AI_PREFIX
from bot.handoff.actions import DeskLineError, ModeratorAction, console_action
from bot.handoff.desk import ConsoleDesk
from bot.messages import Incoming, Outgoing
from connectors.base import replies_to
from connectors.health import Link

PROMPT = "you> "
#: Marks a moderator's line in `bot chat`; a fan has no reason to start a message with it.
DESK_PREFIX = "desk>"
DESK_FORMAT = "MODERATOR_ID [#TICKET] TEXT"
DESK_USAGE = f"desk: expected {DESK_PREFIX} {DESK_FORMAT} (the id must be in [handoff] moderators)"
BANNER = (
    "Console chat with the fan assistant. Type a message, or /privacy, /human, /why, /feedback good|bad; Ctrl-D quits.\n"
    f"Moderators act on tickets here with: {DESK_PREFIX} MODERATOR_ID [#TICKET] /claim NAME | TEXT | /resolve ..."
)


def parse_desk_line(line: str, moderators: tuple[str, ...]) -> Optional[ModeratorAction]:
    """`MODERATOR_ID [#TICKET] TEXT` (TEXT: /claim NAME, a reply, /resolve, ...) as a typed
    action, parsed once, here, and authorised by the console desk's rule (`[handoff]
    moderators`); None when malformed; `DeskLineError` for an unknown desk command."""
    moderator, _, rest = line.strip().partition(" ")
    rest = rest.strip()
    ticket: Optional[int] = None
    if rest.startswith("#"):
        number, _, rest = rest[1:].partition(" ")
        if not number.isdigit():
            return None
        ticket = int(number)
    if not moderator or not rest.strip():
        return None
    return console_action(moderator, rest.strip(), ticket, moderators)


def desk_line(line: str) -> Optional[str]:
    """The rest of a `desk>` line, or None for a fan's line."""
    stripped = line.strip()
    return stripped[len(DESK_PREFIX) :] if stripped.startswith(DESK_PREFIX) else None


def render(reply: Outgoing) -> str:
    """One reply as terminal text: every AI message carries the AI prefix on its first line.

    With the console desk, what goes to the moderators is printed here too, marked.
    """
    if reply.to == "desk":
        label = "[to moderators]"
    else:
        label = CONSOLE_AI_PREFIX if reply.from_ai else "[human moderator]"
    private = " (only you can see this)" if reply.private else ""
    lines = reply.text.splitlines() or [""]
    indent = " " * (len(label) + 1)
    return "\n".join([f"{label}{private} {lines[0]}"] + [indent + line for line in lines[1:]])


class ConsoleConnector:
    name = "console"
    max_message_chars = 4000

    def __init__(self, stdin: TextIO = sys.stdin, stdout: TextIO = sys.stdout, user_id: str = "console-user") -> None:
        self._stdin = stdin
        self._stdout = stdout
        self._user_id = user_id
        self._closed = asyncio.Event()
        self.desk = ConsoleDesk(self._print)

    def _print(self, reply: Outgoing) -> None:
        print(render(reply), file=self._stdout, flush=True)

    async def _deliver(self, replies: list[Outgoing]) -> None:
        for reply in replies:
            if reply.to == "desk":
                await self.desk.post(reply)
            elif reply.recipient is not None and reply.recipient.platform != self.name:
                # A ticket from `bot run` in the same store: its fan is not in this terminal.
                print(
                    f"desk: not delivered: that fan is on {reply.recipient.platform}, which `bot chat` does not serve",
                    file=self._stdout,
                    flush=True,
                )
            else:
                self._print(reply)

    async def _moderate(self, bot: Bot, text: str) -> None:
        bot.handoff.use_desk_copies(self.desk)
        try:
            action = parse_desk_line(text, bot.handoff.settings.moderators)
        except DeskLineError as error:
            print(f"desk: {error}", file=self._stdout, flush=True)
            return
        if action is None:
            print(DESK_USAGE, file=self._stdout, flush=True)
            return
        await self._deliver(await bot.moderate(action))

    def _interactive(self) -> bool:
        return self._stdin.isatty() and self._stdout.isatty()

    async def _read_line(self) -> Optional[str]:
        if self._interactive():
            self._stdout.write(PROMPT)
            self._stdout.flush()
        line = await asyncio.to_thread(self._stdin.readline)
        return line if line else None

    async def run(self, bot: Bot) -> None:
        if self._interactive():
            print(BANNER, file=self._stdout)
        timeouts = asyncio.create_task(self._watch_timeouts(bot))
        try:
            while not self._closed.is_set():
                line = await self._read_line()
                if line is None:
                    break
                moderator_text = desk_line(line)
                if moderator_text is not None:
                    await self._moderate(bot, moderator_text)
                    continue
                incoming = Incoming("console", self._user_id, "console", line.rstrip("\n"))
                await self._deliver(await replies_to(bot, incoming, self.max_message_chars))
        finally:
            timeouts.cancel()

    async def _watch_timeouts(self, bot: Bot, every_seconds: float = 30.0) -> None:
        while True:
            await asyncio.sleep(every_seconds)
            await self._deliver(await bot.expire_handoffs())

    async def link(self) -> Link:
        return Link(True)  # a terminal is always there

    async def aclose(self) -> None:
        self._closed.set()
