"""QA (issue 16): two workers starting together on a fresh PostgreSQL store each wrote the
health probe's first row; the loser's check said "the store is not usable" (a duplicate key)
and `/readyz` answered 503 until its next check. The probe is one upsert now."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import delete

from bot.privacy.crypto import MasterKeys
from bot.privacy.schema import store_meta
from bot.privacy.store import TranscriptStore
from tests.integration.databases import database_url  # noqa: F401 - the fixture


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)  # several processes: PostgreSQL only
async def test_two_stores_probing_a_fresh_database_at_once_both_stay_healthy(database_url: str) -> None:  # noqa: F811
    keys = MasterKeys.parse(MasterKeys.generate())
    first, second = TranscriptStore.open(database_url, None, keys), TranscriptStore.open(database_url, None, keys)
    try:
        for _ in range(40):
            with first.engine.begin() as connection:  # a fresh store: no probe row yet
                connection.execute(delete(store_meta).where(store_meta.c.name == "health_probe"))
            problems = await asyncio.gather(first.check_health(), second.check_health())
            assert problems == [None, None]
    finally:
        await first.aclose()
        await second.aclose()
