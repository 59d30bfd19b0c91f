"""Every statement on a message's path is one SQLAlchemy can cache: a construct without a cache
key (logged as "[no key …]") is compiled anew on every execution, which cost the store thread
about 0.5 ms per message for the conversation-state upsert alone (docs/benchmarks.md)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.config import AssistantSettings
from bot.conversation import ConversationMemory
from bot.core import Bot
from bot.deliveries import DeliveryKeys
from bot.messages import Incoming
from bot.privacy.crypto import MasterKeys
from bot.privacy.pseudonym import Pseudonymizer
from bot.privacy.store import TranscriptStore
from bot.testing.fake_engine import FakeEngine

KEY = b"statement-cache-test-key-0123456789abcdef"


class Compiled(logging.Handler):
    """SQLAlchemy's engine log: each statement, then a line saying how it was compiled."""

    def __init__(self) -> None:
        super().__init__()
        self.statement = ""
        self.uncached: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if message.startswith("[no key"):
            self.uncached.append(self.statement[:80])
        elif not message.startswith("["):
            self.statement = " ".join(message.split())


@pytest.fixture
def compiled() -> Iterator[Compiled]:
    handler, engine_log = Compiled(), logging.getLogger("sqlalchemy.engine.Engine")
    level, propagate = engine_log.level, engine_log.propagate
    engine_log.addHandler(handler)
    engine_log.setLevel(logging.INFO)
    engine_log.propagate = False  # not into the test's captured log (statements carry parameters)
    yield handler
    engine_log.removeHandler(handler)
    engine_log.setLevel(level)
    engine_log.propagate = propagate


async def test_the_message_path_runs_only_statements_sqlalchemy_caches(tmp_path: Path, compiled: Compiled) -> None:
    store = TranscriptStore.open(f"sqlite:///{tmp_path}/t.db", None, MasterKeys.parse(MasterKeys.generate()), KEY)
    bot = Bot(FakeEngine(), Pseudonymizer(KEY), AssistantSettings(), ConversationMemory(idle_seconds=1800), store)
    deliveries = DeliveryKeys(store, lambda key: f"h-{key}")
    try:
        for fan in range(3):  # first contacts: the fans' data keys are made (once per fan)
            await bot.handle(Incoming("slack", f"U{fan}", "dm", "how much is the premium plan"))
        await bot.drain()
        compiled.uncached.clear()
        for n in range(12):
            assert await deliveries.first_time(f"event-{n}")
            await bot.handle(Incoming("slack", f"U{n % 3}", "dm", "i was charged twice this month"))
        await bot.drain()
        assert compiled.statement  # the log was seen
        assert compiled.uncached == [], compiled.uncached
    finally:
        await store.aclose()
