"""Rasa's tracker stays in memory and expires when idle, even when no message comes."""

from __future__ import annotations

import asyncio

import pytest
from rasa.shared.core.domain import Domain
from rasa.shared.core.trackers import DialogueStateTracker

from addons.channel import FanAssistantInput
from addons.tests.conftest import PROJECT
from addons.tracker_store import ExpiringInMemoryTrackerStore


@pytest.fixture(scope="module")
def domain() -> Domain:
    return Domain.load(str(PROJECT / "domain.yml"))


async def test_idle_trackers_expire_and_can_be_dropped(domain: Domain) -> None:
    now = [0.0]
    store = ExpiringInMemoryTrackerStore(idle_seconds=60, monotonic=lambda: now[0])
    store.domain = domain
    await store.save(DialogueStateTracker("fan-a", slots=[]))
    now[0] = 30
    await store.save(DialogueStateTracker("fan-b", slots=[]))
    now[0] = 70
    assert await store.retrieve("fan-a") is None  # idle for 70 s
    assert await store.retrieve("fan-b") is not None
    assert store.drop("fan-b") and not store.drop("fan-b")
    assert list(await store.keys()) == []


async def test_idle_trackers_are_swept_out_without_any_traffic(domain: Domain) -> None:
    now = [0.0]
    store = ExpiringInMemoryTrackerStore(idle_seconds=0.2, monotonic=lambda: now[0])  # swept every 0.1 s
    store.domain = domain
    await store.save(DialogueStateTracker("fan-a", slots=[]))
    sweeper = asyncio.create_task(FanAssistantInput._sweep(store))
    try:
        now[0] = 10.0  # idle far beyond the limit; nothing reads the store
        for _ in range(100):
            if not store.store:
                break
            await asyncio.sleep(0.05)
        assert not store.store and not store.latest_parse
    finally:
        sweeper.cancel()


def test_the_idle_seconds_come_as_a_string_from_endpoints_yml() -> None:
    store = ExpiringInMemoryTrackerStore(idle_seconds="1800", host=None, domain=None, event_broker=None)
    assert store.idle_seconds == 1800.0


@pytest.mark.parametrize("value", [None, "", "soon", "0", "-5", "nan", "inf"])
def test_a_bad_idle_limit_is_one_line_and_exit_2(value: object, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        ExpiringInMemoryTrackerStore(idle_seconds=value)  # type: ignore[arg-type]
    assert exited.value.code == 2
    error = capsys.readouterr().err
    assert "BOT_ENGINE_TRACKER_IDLE_SECONDS" in error and error.count("\n") == 1
