"""Rasa's tracker stays in memory and expires when idle."""

from __future__ import annotations

import pytest

from bot.engine.tracker_store import ExpiringInMemoryTrackerStore

pytestmark = pytest.mark.integration


async def test_idle_trackers_expire_and_can_be_dropped(rasa_engine) -> None:  # type: ignore[no-untyped-def]
    from rasa.shared.core.trackers import DialogueStateTracker

    now = [0.0]
    store = ExpiringInMemoryTrackerStore(idle_seconds=60, monotonic=lambda: now[0])
    store.domain = rasa_engine.agent.domain
    await store.save(DialogueStateTracker("fan-a", slots=[]))
    now[0] = 30
    await store.save(DialogueStateTracker("fan-b", slots=[]))
    now[0] = 70
    assert await store.retrieve("fan-a") is None  # idle for 70 s
    assert await store.retrieve("fan-b") is not None
    assert store.drop("fan-b") and not store.drop("fan-b")
    assert list(await store.keys()) == []
