"""The real trained Rasa model, trained once per run (skipped when up to date) and served
once per run by a real model server (`rasa run` with the project's channel)."""

from __future__ import annotations

import secrets
import subprocess
import time
import urllib.request
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bot.config import AssistantSettings
from bot.conversation import ConversationMemory
from bot.core import Bot
from bot.engine.child import free_port
from bot.engine.rasa_env import RasaEnvironment
from bot.engine.remote import CHANNEL_PATH, ModelServerEngine
from bot.privacy.pseudonym import Pseudonymizer
from bot.privacy.store import TranscriptStore

REPO = Path(__file__).resolve().parents[2]
PROJECT = REPO / "rasa_project"
MODEL = PROJECT / "models" / "fan.tar.gz"
RASA = RasaEnvironment(PROJECT / ".venv", PROJECT)
REAL_BOT_KEY = b"integration-test-key-0123456789abcdef"  # real_bot's pseudonym key
#: Generous: the suite shares two cores with the model servers it starts.
TEST_TIMEOUT_SECONDS = 60.0


@dataclass(frozen=True)
class ModelServer:
    url: str
    token: str
    process: subprocess.Popen[bytes]


def start_model_server(model: Path = MODEL, idle_seconds: float = 1800, token: str = "") -> ModelServer:
    """A real `rasa run` on a free loopback port, started as `bot` starts it; returns when its
    health route answers (raises after 240 s or when it exits)."""
    port, token = free_port(), token or secrets.token_urlsafe(24)
    process = subprocess.Popen(
        RASA.serve_command(model, "127.0.0.1", port), cwd=PROJECT, env=RASA.environment(token, idle_seconds),
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with urllib.request.urlopen(f"{url}{CHANNEL_PATH}/", timeout=2) as response:
                if response.status == 200:
                    return ModelServer(url, token, process)
        except OSError:
            time.sleep(0.3)
    process.kill()
    raise RuntimeError(f"the model server did not become ready (exit {process.poll()})")


def stop_model_server(server: ModelServer) -> None:
    server.process.terminate()
    try:
        server.process.wait(10)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()


@pytest.fixture(scope="session")
def trained_model() -> Path:
    RASA.train(MODEL)
    return MODEL


@pytest.fixture(scope="session")
def model_server(trained_model: Path) -> Iterator[ModelServer]:
    server = start_model_server(trained_model)
    yield server
    stop_model_server(server)


@pytest.fixture
async def model_engine(model_server: ModelServer) -> AsyncIterator[ModelServerEngine]:
    """The engine client the bot uses, on the session's model server (one client per test:
    its HTTP session belongs to the test's event loop)."""
    engine = ModelServerEngine([model_server.url], model_server.token, timeout_seconds=TEST_TIMEOUT_SECONDS)
    yield engine
    await engine.aclose()


@pytest.fixture
def real_bot(model_engine: ModelServerEngine, store: TranscriptStore) -> Bot:
    memory = ConversationMemory(idle_seconds=1800)
    return Bot(model_engine, Pseudonymizer(REAL_BOT_KEY), AssistantSettings(), memory, store)


@pytest.fixture
def new_user() -> str:
    """A fresh fan id per test: the engine's trackers are shared by the session."""
    return f"U{uuid.uuid4().hex[:10].upper()}"
