"""A real model server for tests and benchmarks: `rasa run` with the project's channel, started
exactly as `bot` starts it (`RasaEnvironment.serve_command` / `.environment`), synchronously, on
a free loopback port. The bot itself starts its server with `bot.engine.child`."""

from __future__ import annotations

import secrets
import subprocess
import time
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from bot.engine.child import free_port
from bot.engine.rasa_env import RasaEnvironment
from bot.engine.remote import CHANNEL_PATH

PROJECT = Path(__file__).resolve().parents[2] / "rasa_project"
MODEL = PROJECT / "models" / "fan.tar.gz"
RASA = RasaEnvironment(PROJECT / ".venv", PROJECT)
#: Generous: a loaded 2-core machine, not a measurement.
READY_LIMIT_SECONDS = 240.0


@dataclass(frozen=True)
class ModelServer:
    url: str
    token: str
    process: subprocess.Popen[bytes]
    ready_seconds: float

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start_model_server(
    model: Path = MODEL, idle_seconds: float = 1800, extra_env: Optional[Mapping[str, str]] = None, token: str = ""
) -> ModelServer:
    """Returns once the server's health route says ok (`ready_seconds`: from the process start
    to that); raises `RuntimeError` when it exits or is not ready in time. `token`: share one
    between servers that one `ModelServerEngine` uses together; `extra_env` adds settings."""
    port, token = free_port(), token or secrets.token_urlsafe(24)
    env = RASA.environment(token, idle_seconds)
    env.update(extra_env or {})
    started = time.monotonic()
    process = subprocess.Popen(
        RASA.serve_command(model, "127.0.0.1", port), cwd=PROJECT, env=env,
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    while time.monotonic() < started + READY_LIMIT_SECONDS and process.poll() is None:
        try:
            with urllib.request.urlopen(f"{url}{CHANNEL_PATH}/", timeout=2) as response:
                if response.status == 200:
                    return ModelServer(url, token, process, time.monotonic() - started)
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"the model server did not become ready (exit {process.poll()})")


def children(pid: int) -> list[int]:
    """The process ids of `pid`'s children (/proc/PID/task/*/children)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(child) for child in (task / "children").read_text().split()]
    return found
