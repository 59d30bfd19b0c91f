"""The embedded model server: `rasa run` as the bot's child process, when no `[engine] url`
is configured (the one-command default).

The bot serves commands at once; the model loads beside it (seconds), with a progress line,
and fans get an honest "still starting" reply until it is ready. A server that dies is
restarted with backoff; the bot stops it on exit, and the kernel stops it if the bot dies
(`PR_SET_PDEATHSIG`), so no orphan keeps fans' dialogue context in memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import secrets
import signal
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Optional

from bot.engine.rasa_env import RasaEnvironment
from bot.engine.remote import ModelServerEngine

logger = logging.getLogger(__name__)

HOST = "127.0.0.1"
#: Seconds before the first progress line, and between "still loading" lines.
FIRST_PROGRESS_SECONDS = 1.0
PROGRESS_EVERY_SECONDS = 5.0
#: Restart backoff after a crash: 1, 2, 4 ... seconds, at most this.
MAX_BACKOFF_SECONDS = 30.0
STOP_GRACE_SECONDS = 10.0
PR_SET_PDEATHSIG = 1


def free_port(host: str = HOST) -> int:
    """A port the kernel says is free now (another process could take it before `rasa run`
    binds: the server then fails to start and the supervisor's start timeout reports it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _progress(line: str) -> None:
    print(f"bot: {line}", file=sys.stderr, flush=True)


class ModelServerChild:
    """Starts, watches and stops one `rasa run`. `port` 0: a free loopback port. The token is
    made here for this run only (the child gets it in its environment, nothing else does)."""

    def __init__(
        self,
        rasa: RasaEnvironment,
        model_path: Path,
        tracker_idle_seconds: float,
        port: int = 0,
        start_timeout_seconds: float = 180.0,
        progress: Callable[[str], None] = _progress,
    ) -> None:
        self._rasa = rasa
        self._model_path = model_path
        self._idle_seconds = tracker_idle_seconds
        self._port = port or free_port()
        self._start_timeout = start_timeout_seconds
        self._progress = progress
        self.token = secrets.token_urlsafe(32)
        self._process: Optional[asyncio.subprocess.Process] = None
        self._stopping = False
        self._ready = asyncio.Event()
        self.starts = 0

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self._port}"

    @property
    def pid(self) -> Optional[int]:
        return self._process.pid if self._process is not None else None

    async def _spawn(self) -> asyncio.subprocess.Process:
        self.starts += 1
        return await asyncio.create_subprocess_exec(
            *self._rasa.serve_command(self._model_path, HOST, self._port),
            cwd=self._rasa.project_dir,
            env=self._rasa.environment(self.token, self._idle_seconds),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,  # Rasa's banners; its warnings and errors go to stderr
            preexec_fn=_die_with_parent,
        )

    async def run(self, engine: ModelServerEngine) -> None:
        """Keeps the server up until cancelled: start, wait until ready (progress lines),
        restart with backoff when it exits or never becomes ready. `engine.starting` is true
        while no server is ready, so fans are told the assistant is starting."""
        backoff = 1.0
        while not self._stopping:
            engine.starting = True
            self._ready.clear()
            self._process = await self._spawn()
            started = time.monotonic()
            if await self._wait_ready(engine, self._process, started):
                engine.starting = False
                self._ready.set()
                self._progress(f"dialogue model ready after {time.monotonic() - started:.1f} s")
                code: Optional[int] = await self._process.wait()
                if time.monotonic() - started > 60:
                    backoff = 1.0
            else:
                code = await self._stop_process()
            if self._stopping:
                return
            engine.starting = True
            logger.error("the model server stopped (exit %s); restarting it in %.0f s", code, backoff)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)

    async def _wait_ready(self, engine: ModelServerEngine, process: asyncio.subprocess.Process, started: float) -> bool:
        # The first line after a second: a start-up error (a platform unreachable) stays one line.
        next_line, first = started + FIRST_PROGRESS_SECONDS, True
        while process.returncode is None:
            if await engine.ready(self.url):
                return True
            now = time.monotonic()
            if now - started > self._start_timeout:
                logger.error("the model server was not ready within %.0f s", self._start_timeout)
                return False
            if now >= next_line:
                if first:
                    self._progress(f"loading the dialogue model {self._model_path.name} (the bot already serves commands)")
                else:
                    self._progress(f"still loading the dialogue model ({now - started:.0f} s)")
                next_line, first = now + PROGRESS_EVERY_SECONDS, False
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(process.wait(), 0.25)
        return False

    async def wait_ready(self) -> None:
        await self._ready.wait()

    async def _stop_process(self) -> Optional[int]:
        process = self._process
        if process is None or process.returncode is not None:
            return None if process is None else process.returncode
        process.terminate()
        try:
            return await asyncio.wait_for(process.wait(), STOP_GRACE_SECONDS)
        except TimeoutError:
            process.kill()
            return await process.wait()

    async def aclose(self) -> None:
        self._stopping = True
        await self._stop_process()
