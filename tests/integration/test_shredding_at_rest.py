"""Crypto-shredding cannot be undone from the database files (issue 11 item 3): a few
moments after `/forget-me confirm`, with the bot still running, no file of the store
(SQLite: the database, its WAL and shared-memory file; PostgreSQL: the key table's data
file) holds the fan's wrapped data key or pseudonym."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import make_url

from bot.messages import Incoming
from bot.privacy.crypto import MasterKeys
from bot.privacy.schema import data_keys
from bot.privacy.store import TranscriptStore
from tests.integration.test_privacy_store import database_url, fan_pseudonym, master, new_bot, talk  # noqa: F401

pytestmark = pytest.mark.integration


def _sqlite_files(url: str) -> bytes:
    base = Path(make_url(url).database or "")
    return b"".join(path.read_bytes() for path in (base, Path(f"{base}-wal"), Path(f"{base}-shm")) if path.exists())


def _postgres_key_file(url: str) -> bytes:
    engine = create_engine(url, future=True)
    with engine.connect() as connection:
        folder = connection.execute(text("SHOW data_directory")).scalar()
        relation = connection.execute(text("SELECT pg_relation_filepath('data_keys')")).scalar()
        connection.execute(text("CHECKPOINT"))
    engine.dispose()
    path = Path(str(folder)) / str(relation)
    return b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))


async def test_no_copy_of_the_wrapped_key_or_pseudonym_survives_in_the_files(database_url: str, master: MasterKeys) -> None:  # noqa: F811
    store = TranscriptStore.open(database_url, None, master)
    bot = new_bot(store)
    await talk(bot)
    await talk(bot, user="U0OTHERFAN")  # another fan's data stays
    pseudonym = fan_pseudonym()
    with store.engine.connect() as connection:
        wrapped = connection.execute(select(data_keys.c.wrapped).where(data_keys.c.fan == pseudonym)).scalar()
    assert wrapped
    postgres = database_url.startswith("postgresql")
    if postgres:
        try:
            before = _postgres_key_file(database_url)
        except PermissionError:
            pytest.skip("the PostgreSQL data directory is not readable by this user")
        assert wrapped in before  # the scan can see the key while it exists

    await bot.handle(Incoming("slack", "U0CANARYID", "D1", "/forget-me confirm"))
    await store.settle()
    await asyncio.sleep(0.5)  # "a few seconds after": the bot keeps running, nothing is closed
    if postgres:
        assert await store.compact_keys()  # what the retention task runs
        found = _postgres_key_file(database_url)
    else:
        found = _sqlite_files(database_url)
        assert b"zebracanary" not in found and len(found) > 4096
    assert wrapped not in found
    if not postgres:
        assert pseudonym.encode() not in found
        assert fan_pseudonym("U0OTHERFAN").encode() in found  # the scan does see live data
    await store.aclose()
