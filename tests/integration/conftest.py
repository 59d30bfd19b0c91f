"""The real trained Rasa model, trained once per run (skipped when up to date) and loaded once."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from bot.config import AssistantSettings
from bot.conversation import ConversationMemory
from bot.core import Bot
from bot.engine.rasa_engine import RasaEngine
from bot.engine.training import train
from bot.privacy.pseudonym import Pseudonymizer
from bot.privacy.store import TranscriptStore

REPO = Path(__file__).resolve().parents[2]
PROJECT = REPO / "rasa_project"
MODEL = PROJECT / "models" / "fan.tar.gz"


@pytest.fixture(scope="session")
def trained_model() -> Path:
    train(PROJECT, MODEL)
    return MODEL


@pytest.fixture(scope="session")
def rasa_engine(trained_model: Path) -> RasaEngine:
    return RasaEngine.load(trained_model, tracker_idle_seconds=1800)


@pytest.fixture
def real_bot(rasa_engine: RasaEngine, store: TranscriptStore) -> Bot:
    memory = ConversationMemory(idle_seconds=1800)
    return Bot(rasa_engine, Pseudonymizer(b"integration-test-key-0123456789abcdef"), AssistantSettings(), memory, store)


@pytest.fixture
def new_user() -> str:
    """A fresh fan id per test: the engine's trackers are shared by the session."""
    return f"U{uuid.uuid4().hex[:10].upper()}"
