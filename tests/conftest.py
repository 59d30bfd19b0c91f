"""Shared fixtures: a bot on the fake engine (fast) for unit tests."""

from __future__ import annotations

import pytest

from bot.config import AssistantSettings
from bot.conversation import ConversationMemory
from bot.core import Bot
from bot.privacy.crypto import MasterKeys
from bot.privacy.pseudonym import Pseudonymizer
from bot.privacy.store import TranscriptStore
from bot.testing.fake_engine import FakeEngine

TEST_KEY = b"unit-test-pseudonym-key-0123456789abcdef"


@pytest.fixture
def engine() -> FakeEngine:
    return FakeEngine()


@pytest.fixture
def memory() -> ConversationMemory:
    return ConversationMemory(idle_seconds=1800)


@pytest.fixture
def master_keys() -> MasterKeys:
    return MasterKeys.parse(MasterKeys.generate())


@pytest.fixture
async def store(tmp_path, master_keys: MasterKeys):  # type: ignore[no-untyped-def]
    """A real SQLite file store (fast enough for unit tests, and no fake of our own code)."""
    opened = TranscriptStore.open(f"sqlite:///{tmp_path}/transcripts.db", None, master_keys)
    yield opened
    await opened.aclose()


@pytest.fixture
def bot(engine: FakeEngine, memory: ConversationMemory, store: TranscriptStore) -> Bot:
    return Bot(engine, Pseudonymizer(TEST_KEY), AssistantSettings(), memory, store)
