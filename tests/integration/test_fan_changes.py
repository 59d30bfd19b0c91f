"""Caches are invalidated across processes at once (issue 16): two `Bot`s, each with its own
store object (two processes' worth of caches) on one database, PostgreSQL `LISTEN/NOTIFY`
between them (`bot.privacy.notify`), and a real `bot forget` child process. On SQLite (one
serving process) nothing is announced: the versioned read at the fan's next message and the
check in the insert's transaction keep the same promises."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from pathlib import Path
from typing import Optional

import pytest
from sqlalchemy import create_engine, text

from bot.config import AssistantSettings, HandoffSettings
from bot.conversation import ConversationMemory
from bot.core import Bot
from bot.messages import Incoming
from bot.privacy.crypto import MasterKeys
from bot.privacy.notify import ChangeListener, listen_for_changes
from bot.privacy.pseudonym import Pseudonymizer
from bot.privacy.store import TranscriptStore, Turn
from bot.testing.fake_engine import FakeEngine
from tests.integration.conftest import REPO
from tests.integration.databases import database_url  # noqa: F401  (fixture)

pytestmark = pytest.mark.integration
KEY = b"fan-changes-test-pseudonym-key-0123456789"
SETTINGS = HandoffSettings(moderators=("M1",))
FAN = Pseudonymizer(KEY).fan("slack", "U1")
#: Generous: a notice arrives in milliseconds (bench/erasure_workers.py); this only bounds a hang.
WITHIN_SECONDS = 10.0


class World:
    def __init__(self, url: str, master: str) -> None:
        self.url, self.master = url, master
        keys = MasterKeys.parse(master)
        self.stores = (TranscriptStore.open(url, None, keys, KEY), TranscriptStore.open(url, None, keys, KEY))
        self.listeners = [listen_for_changes(store) for store in self.stores]
        self.engines = (FakeEngine(), FakeEngine())
        self.a, self.b = (
            Bot(engine, Pseudonymizer(KEY), AssistantSettings(), ConversationMemory(1800), store, handoff=SETTINGS)
            for engine, store in zip(self.engines, self.stores)
        )

    @property
    def postgres(self) -> bool:
        return self.url.startswith("postgresql")

    @property
    def b_listener(self) -> Optional[ChangeListener]:
        return self.listeners[1]


@pytest.fixture
async def world(database_url: str) -> AsyncIterator[World]:  # noqa: F811
    made = World(database_url, MasterKeys.generate())
    for listener in made.listeners:
        if listener is not None:
            assert await asyncio.to_thread(listener.listening.wait, WITHIN_SECONDS)
    yield made
    for store in made.stores:
        await store.aclose()


async def eventually(condition: Callable[[], bool]) -> bool:
    for _ in range(int(WITHIN_SECONDS / 0.01)):
        if condition():
            return True
        await asyncio.sleep(0.01)
    return condition()


def kinds(replies: list) -> list[str]:  # type: ignore[type-arg]
    return [reply.kind.value for reply in replies]


def says(text: str) -> Incoming:
    return Incoming("slack", "U1", "D1", text)


async def b_holds_the_fan(world: World) -> None:
    await world.b.handle(says("hello"))
    await world.b.handle(says("I forgot my password"))
    await world.b.drain()
    assert world.stores[1].holds_key(FAN) and await world.stores[1].holds_recent(FAN)
    assert world.engines[1].history_of(FAN) is not None


async def starts_afresh_under_a_new_key(world: World) -> None:
    """B's next message is a first contact, and everything stored is readable (a new key)."""
    assert kinds(await world.b.handle(says("hello again")))[0] == "disclosure"
    await world.b.drain()
    export = await world.stores[1].export(FAN)
    assert export["encryption_key"] == "held"
    assert [turn["kind"] for turn in export["turns"]] == ["message", "disclosure", "answer"]
    assert all("unreadable" not in turn["text"] for turn in export["turns"])


async def test_an_erasure_in_one_process_empties_the_others_caches_at_once(world: World) -> None:
    await b_holds_the_fan(world)
    assert kinds(await world.a.handle(says("/forget-me confirm")))[0] == "erasure_done"
    await world.a.drain()
    if world.postgres:  # without waiting for the fan's next message: B dropped key, turns and tracker
        assert await eventually(lambda: not world.stores[1].holds_key(FAN) and world.engines[1].history_of(FAN) is None)
        assert not await world.stores[1].holds_recent(FAN)
    await starts_afresh_under_a_new_key(world)


@pytest.mark.parametrize("cached", [True, False], ids=["key-cached", "key-not-cached"])
async def test_a_write_queued_before_an_erasure_elsewhere_is_dropped(world: World, cached: bool) -> None:
    writer = world.b if cached else world.a  # key-not-cached: B never met the fan, A made the key
    await writer.handle(says("hello"))
    await writer.drain()
    if not cached and not world.postgres:
        pytest.skip("SQLite is single-process: nothing announces an erasure to a process that never met the fan")
    assert world.stores[1].holds_key(FAN) is cached
    gate, holding = threading.Event(), threading.Event()

    def hold() -> None:
        holding.set()
        gate.wait()

    busy = asyncio.ensure_future(world.stores[1].run(hold))  # B's store thread is busy: its write waits
    assert await asyncio.to_thread(holding.wait, WITHIN_SECONDS)
    try:
        seen = world.stores[1].changes_seen
        queued = world.stores[1].submit(Turn(FAN, "c", "fan", "message", datetime.utcnow(), "from before the erasure"))
        assert kinds(await world.a.handle(says("/forget-me confirm")))[0] == "erasure_done"
        await world.a.drain()
        if world.postgres:
            assert await eventually(lambda: world.stores[1].changes_seen > seen)
    finally:
        gate.set()
    await busy
    await queued
    await world.b.drain()
    assert await world.stores[0].count_turns(FAN) == 0
    assert not await world.stores[0].holds_data(FAN)  # no key made for the earlier state either


async def test_bot_forget_from_the_command_line_reaches_the_running_process(world: World, tmp_path: Path) -> None:
    await b_holds_the_fan(world)
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOT_")}
    env.update(BOT_PSEUDONYM_KEY=KEY.decode(), BOT_MASTER_KEYS=world.master, BOT_STORE_URL=world.url,
               BOT_SECRETS_DEV_KEYS_FILE=str(tmp_path / "never-used.env"))
    forgotten = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "bot", "forget", "--user", "slack:U1"],
        capture_output=True, text=True, cwd=REPO, env=env, timeout=120,
    )
    assert forgotten.returncode == 0, forgotten.stderr
    if world.postgres:
        assert "drops what it held of this fan at once" in forgotten.stdout
        assert await eventually(lambda: not world.stores[1].holds_key(FAN) and world.engines[1].history_of(FAN) is None)
        assert not await world.stores[1].holds_recent(FAN)
    await starts_afresh_under_a_new_key(world)


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)  # SQLite serves from one process
async def test_privacy_off_in_one_process_is_honoured_by_the_others_next_message(world: World) -> None:
    await b_holds_the_fan(world)
    assert await world.stores[1].logging_enabled(FAN)  # cached in B
    stored = await world.stores[0].count_turns(FAN)
    seen = world.stores[1].changes_seen
    await world.a.handle(says("/privacy off"))
    assert await eventually(lambda: world.stores[1].changes_seen > seen)
    await world.b.handle(says("I forgot my password"))
    await world.b.drain()
    assert await world.stores[0].count_turns(FAN) == stored


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)  # nothing listens on SQLite
async def test_a_lost_listener_reconnects_and_drops_every_cache(world: World) -> None:
    await b_holds_the_fan(world)
    listener = world.b_listener
    assert listener is not None and listener.connections == 1
    admin = create_engine(world.url, future=True, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        killed = connection.execute(text(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE application_name = 'fan-changes' AND datname = current_database()"
        )).all()
    admin.dispose()
    assert len(killed) == 2  # A's and B's listeners
    assert await eventually(lambda: listener.connections >= 2 and listener.listening.is_set())
    assert not world.stores[1].holds_key(FAN) and not await world.stores[1].holds_recent(FAN)
    await world.b.handle(says("and again"))  # cached again, and notices flow again
    await world.b.drain()
    assert world.stores[1].holds_key(FAN)
    await world.a.handle(says("/forget-me confirm"))
    assert await eventually(lambda: not world.stores[1].holds_key(FAN))
