"""Shared fixtures: a bot on the fake engine (fast) for unit tests, and no test reading
the developer's own settings."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot import config as bot_config
from bot.config import AssistantSettings
from bot.conversation import ConversationMemory
from bot.core import Bot
from bot.privacy.crypto import MasterKeys
from bot.privacy.pseudonym import Pseudonymizer
from bot.privacy.store import TranscriptStore
from bot.testing.fake_engine import FakeEngine

TEST_KEY = b"unit-test-pseudonym-key-0123456789abcdef"
#: The only `BOT_*` variables a test may take from the shell: where its database servers are.
SUITE_ENV = frozenset({"BOT_TEST_POSTGRES_URL", "BOT_BENCH_POSTGRES_URL"})


@pytest.fixture(autouse=True)
def no_developer_settings(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """`load_config` falls back to ./config.toml and reads `BOT_*` variables: a developer's
    own file or exported settings must not change what the tests see. The fallback file is
    pointed at a path that never exists (a test of the fallback itself sets it back)."""
    absent = tmp_path_factory.getbasetemp() / "no-such-dir" / "config.toml"
    monkeypatch.setattr(bot_config, "DEFAULT_CONFIG_FILE", absent)
    for name in list(os.environ):
        if name.upper().startswith(bot_config.ENV_PREFIX) and name not in SUITE_ENV:
            monkeypatch.delenv(name)
    yield absent


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
