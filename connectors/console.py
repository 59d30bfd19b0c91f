"""The terminal chat: the dependency-free reference connector.

Works with or without a terminal: end of input ends the chat cleanly, so
`echo hello | bot chat` and `make run < /dev/null` both exit 0.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Optional, TextIO

from bot.core import Bot
from bot.disclosure import CONSOLE_AI_PREFIX
from bot.handoff.desk import ConsoleDesk
from bot.messages import Incoming, Outgoing

PROMPT = "you> "
BANNER = "Console chat with the fan assistant. Type a message, or /privacy, /human, /why; Ctrl-D quits."


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
            else:
                self._print(reply)

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
                incoming = Incoming("console", self._user_id, "console", line.rstrip("\n"))
                await self._deliver(await bot.handle(incoming, self.max_message_chars))
        finally:
            timeouts.cancel()

    async def _watch_timeouts(self, bot: Bot, every_seconds: float = 30.0) -> None:
        while True:
            await asyncio.sleep(every_seconds)
            await self._deliver(await bot.expire_handoffs())

    async def aclose(self) -> None:
        self._closed.set()
