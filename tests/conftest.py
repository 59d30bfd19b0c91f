"""Shared fixtures: a bot on the fake engine (fast) for unit tests."""

from __future__ import annotations

import pytest

from bot.config import AssistantSettings
from bot.conversation import ConversationMemory
from bot.core import Bot
from bot.privacy.pseudonym import Pseudonymizer
from bot.testing.fake_engine import FakeEngine

TEST_KEY = b"unit-test-pseudonym-key-0123456789abcdef"


@pytest.fixture
def engine() -> FakeEngine:
    return FakeEngine()


@pytest.fixture
def memory() -> ConversationMemory:
    return ConversationMemory(idle_seconds=1800)


@pytest.fixture
def bot(engine: FakeEngine, memory: ConversationMemory) -> Bot:
    return Bot(engine, Pseudonymizer(TEST_KEY), AssistantSettings(), memory)
