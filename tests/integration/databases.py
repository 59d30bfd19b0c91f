"""`database_url`: the same test on a SQLite file and on a throwaway PostgreSQL database
(`tests/with_postgres.sh` or `.ci/run` sets BOT_TEST_POSTGRES_URL). Import the fixture."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from bot.privacy.crypto import MasterKeys
from bot.privacy.store import TranscriptStore


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/transcripts.db"
        return
    base = os.environ.get("BOT_TEST_POSTGRES_URL")
    if not base:
        if os.environ.get("CI"):
            pytest.fail("BOT_TEST_POSTGRES_URL is not set: .ci/run starts PostgreSQL for these tests")
        pytest.skip("no PostgreSQL server: set BOT_TEST_POSTGRES_URL (see .ci/run)")
    name = f"bot_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT", future=True)
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    yield str(make_url(base).set(database=name))
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
async def stores(database_url: str, request: pytest.FixtureRequest) -> AsyncIterator[tuple[TranscriptStore, TranscriptStore]]:
    """Two store objects on one database: what two processes would hold. Opened under the test
    module's pseudonym key, its `KEY`."""
    master = MasterKeys.parse(MasterKeys.generate())
    key: bytes = request.module.KEY
    first = TranscriptStore.open(database_url, None, master, key)
    second = TranscriptStore.open(database_url, None, master, key)
    yield first, second
    await first.aclose()
    await second.aclose()
