"""Fixtures for the model server's tests: the real trained model, a real `rasa run`."""

from __future__ import annotations

import http.client
import json
import os
import secrets
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Optional

import pytest

from addons.quiet import QUIET_ENVIRONMENT, quiet_rasa

quiet_rasa()  # before any test imports Rasa, which would otherwise warn and log

PROJECT = Path(__file__).resolve().parents[2]
MODEL = PROJECT / "models" / "fan.tar.gz"
PYTHON = Path(sys.executable)
STARTUP_LIMIT_SECONDS = 300  # a generous bound for a loaded 2-core machine, not a measurement


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def server_command(port: int) -> list[str]:
    """The command of the contract (docs/model-server.md), cwd rasa_project."""
    return [
        str(PYTHON), "-m", "addons.serve", "run", "--model", "models/fan.tar.gz", "--credentials", "credentials.yml",
        "--endpoints", "endpoints.yml", "--interface", "127.0.0.1", "--port", str(port),
    ]


def server_environment(**overrides: Optional[str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("BOT_ENGINE_TOKEN", "BOT_ENGINE_TRACKER_IDLE_SECONDS")}
    env.update({k: v for k, v in QUIET_ENVIRONMENT.items() if k in ("RASA_TELEMETRY_ENABLED", "TF_CPP_MIN_LOG_LEVEL", "LOG_LEVEL")})
    for name, value in overrides.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


@dataclass
class Server:
    port: int
    token: str
    log_path: Path

    def request(
        self, method: str, route: str, body: Any = None, token: Optional[str] = "", raw: Optional[bytes] = None, authorization: Optional[str] = None
    ) -> tuple[int, Any]:
        """One HTTP request; `token=""` means the right one, None no header;
        `authorization` is a whole header value instead."""
        headers = {"Content-Type": "application/json"}
        if authorization is not None:
            headers["Authorization"] = authorization
        elif token is not None:
            headers["Authorization"] = f"Bearer {token or self.token}"
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            connection.request(method, f"/webhooks/fan_assistant/{route}", body=data, headers=headers)
            reply = connection.getresponse()
            return reply.status, json.loads(reply.read() or b"null")
        finally:
            connection.close()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@pytest.fixture(scope="session")
def trained_model() -> Path:
    if not MODEL.is_file():
        pytest.fail(f"no trained model at {MODEL}: run `cd rasa_project && .venv/bin/python -m addons.train`")
    return MODEL


@pytest.fixture(scope="session")
def server(trained_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A real `rasa run` with the project's channel, on a free loopback port."""
    port, token = free_port(), secrets.token_urlsafe(24)
    log_path = tmp_path_factory.mktemp("server") / "server.log"
    env = server_environment(BOT_ENGINE_TOKEN=token, BOT_ENGINE_TRACKER_IDLE_SECONDS="1800")
    with log_path.open("wb") as log:
        process = subprocess.Popen(server_command(port), cwd=PROJECT, env=env, stdout=log, stderr=subprocess.STDOUT)
    started = Server(port, token, log_path)
    try:
        deadline = time.monotonic() + STARTUP_LIMIT_SECONDS
        while True:
            if process.poll() is not None:
                pytest.fail(f"rasa run exited with {process.returncode}:\n{started.log()[-3000:]}")
            try:
                if started.request("GET", "", token=None)[0] == 200:
                    break
            except (OSError, http.client.HTTPException, ValueError):
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"rasa run not ready after {STARTUP_LIMIT_SECONDS} s:\n{started.log()[-3000:]}")
            time.sleep(0.2)
        yield started
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
