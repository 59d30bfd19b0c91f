"""Operations while the bot serves, on a real SQLite file and a real PostgreSQL server:
the background retention purge, `bot purge`, key rotation, and an upgrade from schema 0001
with data. The bot is the real `Bot` on the real trained model."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, insert, select, text

from bot.cli import main
from bot.config import AssistantSettings
from bot.conversation import ConversationMemory
from bot.core import Bot
from bot.engine.remote import ModelServerEngine
from bot.handoff.ticket_store import TicketStore
from bot.messages import Incoming
from bot.privacy import crypto, migrate
from bot.privacy.crypto import MasterKeyError, MasterKeys
from bot.privacy.pseudonym import Pseudonymizer
from bot.privacy.retention import purge_forever
from bot.privacy.schema import data_keys, turns
from bot.privacy.store import TranscriptStore
from tests.integration.conftest import MODEL, REPO
from tests.integration.test_privacy_store import database_url  # noqa: F401  (the SQLite + PostgreSQL fixture)

pytestmark = pytest.mark.integration
KEY = "operations-test-pseudonym-key-0123456789abcdef"
QUESTIONS = ["hello", "my stream keeps buffering", "how do I reset my password?", "when is the next episode?"]


def serving_bot(engine: ModelServerEngine, store: TranscriptStore, clock: Callable[[], datetime] = datetime.utcnow) -> Bot:
    return Bot(engine, Pseudonymizer(KEY.encode()), AssistantSettings(), ConversationMemory(1800), store, clock=clock)


def fan(user: str) -> str:
    return Pseudonymizer(KEY.encode()).fan("slack", user)


async def converse(bot: Bot, user: str, lines: list[str] = QUESTIONS) -> None:
    for line in lines:
        await bot.handle(Incoming("slack", user, f"D{user}", line))


def unique(prefix: str) -> str:
    """Fan ids unique per test: the model's trackers live for the whole session."""
    return f"{prefix}{os.urandom(4).hex().upper()}"


# The background retention purge -------------------------------------------------------------


async def test_the_background_purge_deletes_old_turns_while_the_bot_serves(
    model_engine: ModelServerEngine, database_url: str  # noqa: F811
) -> None:
    master = MasterKeys.parse(MasterKeys.generate())
    store = TranscriptStore.open(database_url, None, master, KEY.encode())
    now = [datetime.utcnow() - timedelta(days=45)]
    bot = serving_bot(model_engine, store, clock=lambda: now[0])
    old_fan, new_fan = unique("UOLD"), unique("UNEW")
    await converse(bot, old_fan)  # 45 days ago
    await bot.drain()
    old_turns = await store.count_turns(fan(old_fan))
    assert old_turns >= len(QUESTIONS)

    now[0] = datetime.utcnow()
    cutoff = now[0] - timedelta(days=30)
    purging = asyncio.create_task(purge_forever(store, retention_days=30, interval_seconds=0.05, clock=lambda: now[0]))
    try:
        await converse(bot, old_fan, ["thanks"])  # today: stays
        for round_ in range(200):  # the bot keeps serving while the purge runs in the background
            await converse(bot, new_fan, [QUESTIONS[round_ % len(QUESTIONS)]])
            if round_ >= 3 and await store.purge(cutoff, dry_run=True) == 0:
                break
        await bot.drain()
    finally:
        purging.cancel()
    old_export = await store.export(fan(old_fan), actor="operator")
    assert old_export["turns"], "the old fan's turns of today stay"
    assert all(datetime.fromisoformat(turn["at"].rstrip("Z")) >= cutoff.replace(microsecond=0) for turn in old_export["turns"])
    assert len(old_export["turns"]) < old_turns
    new_export = await store.export(fan(new_fan), actor="operator")
    assert len(new_export["turns"]) >= 4 and not any(t["text"].startswith("[unreadable") for t in new_export["turns"])
    assert "retention_purge" in [entry["action"] for entry in store.audit_log.entries()]
    await store.aclose()


async def test_bot_chat_runs_the_purge_in_the_background(model_engine: ModelServerEngine, database_url: str) -> None:  # noqa: F811
    """The wiring: the serving command itself starts the purge (it purges at start)."""
    masters = MasterKeys.generate()
    store = TranscriptStore.open(database_url, None, MasterKeys.parse(masters), KEY.encode())
    old_fan = unique("UOLD")
    await converse(serving_bot(model_engine, store, clock=lambda: datetime.utcnow() - timedelta(days=31)), old_fan)
    await store.aclose()
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOT_")}
    env.update(BOT_STORE_URL=database_url, BOT_PSEUDONYM_KEY=KEY, BOT_MASTER_KEYS=masters)
    chat = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "--model", str(MODEL), "chat", cwd=REPO, env=env,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await chat.communicate(b"hello\nmy stream keeps buffering\n")
    assert chat.returncode == 0, err.decode()
    assert out.decode().count("[AI assistant]") >= 3
    store = TranscriptStore.open(database_url, None, MasterKeys.parse(masters), KEY.encode())
    assert await store.count_turns(fan(old_fan)) == 0
    assert await store.count_turns(Pseudonymizer(KEY.encode()).fan("console", "console-user")) >= 3
    assert "retention_purge" in [entry["action"] for entry in store.audit_log.entries()]
    await store.aclose()


# `bot purge` through the real command -------------------------------------------------------


def test_bot_purge_deletes_old_turns_and_prints_the_count(
    model_engine: ModelServerEngine, database_url: str, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]  # noqa: F811
) -> None:
    masters = MasterKeys.generate()
    old_fan, new_fan = unique("UOLD"), unique("UNEW")

    async def populate() -> tuple[int, int]:
        store = TranscriptStore.open(database_url, None, MasterKeys.parse(masters), KEY.encode())
        when = [datetime.utcnow() - timedelta(days=31)]
        bot = serving_bot(model_engine, store, clock=lambda: when[0])
        await converse(bot, old_fan)
        when[0] = datetime.utcnow()
        await converse(bot, new_fan)
        await bot.drain()
        counts = await store.count_turns(fan(old_fan)), await store.count_turns(fan(new_fan))
        await store.aclose()
        return counts

    old_count, new_count = asyncio.run(populate())
    monkeypatch.setenv("BOT_STORE_URL", database_url)
    monkeypatch.setenv("BOT_PSEUDONYM_KEY", KEY)
    monkeypatch.setenv("BOT_MASTER_KEYS", masters)
    assert main(["purge", "--dry-run"]) == 0
    dry = capfd.readouterr().out
    assert dry.startswith(f"bot: would delete {old_count} turn(s), ")  # and the events, tickets, ratings
    assert main(["purge"]) == 0  # the same itemised counts (QA 17b item 1)
    assert capfd.readouterr().out.startswith("bot: deleted " + dry.removeprefix("bot: would delete ").split(" older than ")[0] + " older than ")
    assert main(["purge"]) == 0
    assert capfd.readouterr().out.startswith("bot: deleted 0 turn(s), ")

    with create_engine(database_url, future=True).connect() as connection:
        remaining = dict(connection.execute(text("SELECT fan, COUNT(*) FROM turns GROUP BY fan")).all())
    assert remaining == {fan(new_fan): new_count}


# Key rotation while the bot serves ----------------------------------------------------------


async def test_key_rotation_while_the_bot_serves_then_the_old_key_goes(
    model_engine: ModelServerEngine, database_url: str  # noqa: F811
) -> None:
    old, new = MasterKeys.generate(), MasterKeys.generate()
    fans = [unique("UROT") for _ in range(3)]
    store = TranscriptStore.open(database_url, None, MasterKeys.parse(old), KEY.encode())
    bot = serving_bot(model_engine, store)
    for user in fans[:2]:
        await converse(bot, user, QUESTIONS[:2])
    await store.aclose()

    # Restarted with NEW,OLD; `bot keys rotate` runs in its own process while fans keep writing.
    store = TranscriptStore.open(database_url, None, MasterKeys.parse(f"{new},{old}"), KEY.encode())
    bot = serving_bot(model_engine, store)
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOT_")}
    env.update(BOT_STORE_URL=database_url, BOT_PSEUDONYM_KEY=KEY, BOT_MASTER_KEYS=f"{new},{old}")
    rotation = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "keys", "rotate", cwd=REPO, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    finished = asyncio.create_task(rotation.communicate())
    rounds = 0
    while not finished.done() or rounds < 2:
        for user in fans:
            await converse(bot, user, [QUESTIONS[rounds % len(QUESTIONS)]])
        rounds += 1
    _, stderr = await finished
    assert rotation.returncode == 0 and "rewrapped" in stderr.decode(), stderr.decode()
    for user in fans:  # still writing and readable after the rotation
        await converse(bot, user, ["thanks"])
    served = {user: await store.export(fan(user), actor="operator") for user in fans}
    await store.aclose()
    for export in served.values():
        assert export["turns"] and not any(turn["text"].startswith("[unreadable") for turn in export["turns"])

    # Restarted with NEW only: the old key is gone and everything still decrypts.
    with pytest.raises(MasterKeyError):
        TranscriptStore.open(database_url, None, MasterKeys.parse(old), KEY.encode())
    store = TranscriptStore.open(database_url, None, MasterKeys.parse(new), KEY.encode())
    for user in fans:
        export = await store.export(fan(user), actor="operator")
        assert [turn["text"] for turn in export["turns"]] == [turn["text"] for turn in served[user]["turns"]]
    with store.engine.connect() as connection:
        wrapped = [row.wrapped for row in connection.execute(select(data_keys.c.wrapped))]
    assert len(wrapped) == len(fans) and all(MasterKeys.parse(new).unwrap(w) for w in wrapped)
    await store.aclose()


# Upgrade from schema 0001 with data ---------------------------------------------------------


def alembic_to(url: str, revision: str) -> None:
    """What `migrate.upgrade` does, stopping at `revision`: a database an old version made."""
    engine = create_engine(url, future=True)
    for role in ("transcripts", "keys"):
        config = AlembicConfig()
        config.set_main_option("script_location", str(migrate.MIGRATIONS))
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            config.attributes["role"] = role
            command.upgrade(config, revision)
    engine.dispose()


async def test_a_store_at_schema_0001_with_data_upgrades_and_its_data_survive(
    model_engine: ModelServerEngine, database_url: str, tmp_path: Path  # noqa: F811
) -> None:
    if database_url.startswith("sqlite"):  # the store creates the file owner-only; so did 0001's
        Path(database_url.removeprefix("sqlite:///")).touch(mode=0o600)
    alembic_to(database_url, "0001")
    master = MasterKeys.parse(MasterKeys.generate())
    user = unique("UOLDSCHEMA")
    pseudonyms = Pseudonymizer(KEY.encode())
    fan_id, conversation = pseudonyms.fan("slack", user), pseudonyms.conversation("slack", f"D{user}", user)
    data_key = crypto.new_data_key()
    then = datetime.utcnow().replace(microsecond=0) - timedelta(days=2)
    engine = create_engine(database_url, future=True)
    with engine.begin() as connection:  # one fan's turn, encrypted as the store encrypts it
        connection.execute(insert(data_keys).values(fan=fan_id, wrapped=master.wrap(data_key), created_at=then))
        connection.execute(
            insert(turns).values(
                fan=fan_id, conversation=conversation, role="fan", kind="message", at=then,
                intent="faq_billing", confidence=0.9, body=crypto.encrypt(data_key, "my refund for [EMAIL] please"),
            )
        )
    engine.dispose()

    store = TranscriptStore.open(database_url, None, master, KEY.encode(), adopt_pseudonym_key=True)  # `bot db upgrade`: migrates to whatever head is
    head = ScriptDirectory(str(migrate.MIGRATIONS)).get_current_head()
    with store.engine.connect() as connection:
        for role in ("transcripts", "keys"):
            assert connection.execute(text(f"SELECT version_num FROM alembic_version_{role}")).scalar() == head
    export = await store.export(fan_id, actor="operator")
    assert [(t["role"], t["kind"], t["intent"], t["text"]) for t in export["turns"]] == [
        ("fan", "message", "faq_billing", "my refund for [EMAIL] please")
    ]
    assert export["turns"][0]["at"] == then.isoformat(timespec="seconds") + "Z"

    # The same fan carries on (same data key), and the newer tables work (a handoff ticket).
    bot = serving_bot(model_engine, store)
    await converse(bot, user, ["how do I reset my password?", "/human"])
    await bot.drain()
    export = await store.export(fan_id, actor="operator")
    assert export["turns"][0]["text"] == "my refund for [EMAIL] please" and len(export["turns"]) > 2
    assert not any(turn["text"].startswith("[unreadable") for turn in export["turns"])
    assert [ticket.fan for ticket in await TicketStore(store).listing(active_only=True)] == [fan_id]
    await store.aclose()
