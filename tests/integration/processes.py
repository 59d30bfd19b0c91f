"""A `bot` child process's standard error, read as it comes, so a test can wait for a line
(e.g. "dialogue model ready") and still see the whole log at the end."""

from __future__ import annotations

import asyncio


class LineReader:
    def __init__(self, stream: asyncio.StreamReader) -> None:
        self.lines: list[str] = []
        self._changed = asyncio.Event()
        self._task = asyncio.create_task(self._read(stream))

    async def _read(self, stream: asyncio.StreamReader) -> None:
        while line := await stream.readline():
            self.lines.append(line.decode(errors="replace"))
            self._changed.set()
        self._changed.set()

    async def wait_for(self, text: str, timeout: float = 240.0) -> str:
        """The first line containing `text`; raises `TimeoutError` naming what was seen."""
        async def seen() -> str:
            while True:
                for line in self.lines:
                    if text in line:
                        return line
                if self._task.done():
                    raise EOFError(f"the process ended before printing {text!r}:\n{self.text}")
                self._changed.clear()
                await self._changed.wait()

        return await asyncio.wait_for(seen(), timeout)

    async def finish(self) -> str:
        await self._task
        return self.text

    @property
    def text(self) -> str:
        return "".join(self.lines)
