"""The real trained Rasa model, trained once per run (skipped when up to date) and served
once per run by a real model server (`rasa run` with the project's channel)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from bot.config import AssistantSettings
from bot.conversation import ConversationMemory
from bot.core import Bot
from bot.engine.remote import ModelServerEngine
from bot.privacy.pseudonym import Pseudonymizer
from bot.privacy.store import TranscriptStore
from bot.testing.model_server import MODEL, RASA, ModelServer, start_model_server

REPO = Path(__file__).resolve().parents[2]
REAL_BOT_KEY = b"integration-test-key-0123456789abcdef"  # real_bot's pseudonym key
#: Generous: the suite shares two cores with the model servers it starts.
TEST_TIMEOUT_SECONDS = 60.0


@pytest.fixture(scope="session")
def trained_model() -> Path:
    RASA.train(MODEL)
    return MODEL


@pytest.fixture(scope="session")
def model_server(trained_model: Path) -> Iterator[ModelServer]:
    server = start_model_server(trained_model)
    yield server
    server.stop()


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
