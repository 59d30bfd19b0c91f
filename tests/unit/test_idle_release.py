"""What a process holds of idle fans goes (issue 11): every per-fan cache expires with the
conversation idle limit, SQLite's connection is reopened after a burst, and the periodic
task of every process does it and trims the heap."""

from __future__ import annotations

import asyncio
import sys
from datetime import datetime
from typing import Any

import pytest

from bot import heap
from bot.privacy.caches import FanCaches
from bot.privacy.notify import fan_token
from bot.privacy.store import RELEASE_RECONNECT_FANS, TranscriptStore
from bot.privacy.turns import RecentTurns
from connectors import launch

KEY = (b"k" * 44, datetime(2026, 11, 30))


def test_a_fan_idle_past_the_limit_is_dropped_from_every_cache_at_once() -> None:
    now = [0.0]
    caches = FanCaches(idle_seconds=60, monotonic=lambda: now[0])
    caches.recent = RecentTurns(limit=2, idle_seconds=3600, monotonic=lambda: now[0])  # its own limit is longer here
    caches.keep_keys({"idle": KEY, "active": KEY})
    caches.logging.keep({"idle": True, "active": False})
    caches.recent.start("idle")
    now[0] = 40.0
    caches.touch("active")  # used again (a turn written with their key)
    now[0] = 61.0
    assert caches.expire() == 1
    assert "idle" not in caches.keys and "idle" not in caches.logging and "idle" not in caches.recent
    assert fan_token("idle") not in caches.tokens
    assert "active" in caches.keys and caches.tokens[fan_token("active")] == "active"
    now[0] = 101.0
    assert caches.expire() == 1 and not caches.keys and not caches.tokens


def test_without_an_idle_limit_nothing_expires_and_the_use_record_stays_bounded() -> None:
    caches = FanCaches()
    caches.keep_keys({f"fan{n}": KEY for n in range(50)})
    assert caches.expire() == 0 and len(caches.keys) == 50


def test_after_most_fans_went_the_tables_are_rebuilt_small() -> None:
    now = [0.0]
    caches = FanCaches(idle_seconds=1, monotonic=lambda: now[0])
    caches.keep_keys({f"fan{n}": KEY for n in range(5000)})
    grown = sys.getsizeof(caches.keys) + sys.getsizeof(caches.tokens)
    now[0] = 10.0
    caches.keep_keys({"late": KEY})  # expiry runs on access too
    assert list(caches.keys) == ["late"]
    assert sys.getsizeof(caches.keys) + sys.getsizeof(caches.tokens) < grown / 20


async def test_the_store_drops_idle_fans_keys_and_reopens_sqlite_after_a_burst(store: TranscriptStore) -> None:
    store.keep_recent(10, idle_seconds=0.2)
    fans = [f"fan{n}" for n in range(RELEASE_RECONNECT_FANS)]
    await store.run(lambda: store.hold_keys(fans, create=True))
    assert store.holds_key(fans[0])
    connection_before = await store.run(lambda: store.engine.pool.checkedin())
    assert connection_before == 1
    assert await store.release_idle() == 0  # not idle yet
    await asyncio.sleep(0.3)
    assert await store.release_idle() == len(fans)
    assert not store.holds_key(fans[0])
    assert store.engine.pool.checkedin() == 0  # closed: its page cache and prepared statements are gone
    await store.run(lambda: store.hold_keys(["again"], create=True))  # opened afresh on use
    assert store.holds_key("again")


class _Bot:
    def __init__(self, released: int) -> None:
        self.released, self.calls = released, 0

    async def release_idle(self) -> int:
        self.calls += 1
        return self.released


class _Connector:
    def __init__(self, released: int) -> None:
        self.released, self.calls = released, 0

    def release_idle(self) -> int:
        self.calls += 1
        return self.released


@pytest.mark.parametrize(("bot_released", "connector_released", "trimmed"), [(3, 0, True), (0, 2, True), (0, 0, False)])
async def test_every_process_releases_idle_fans_periodically_and_trims_the_heap_when_any_went(
    monkeypatch: pytest.MonkeyPatch, bot_released: int, connector_released: int, trimmed: bool
) -> None:
    trims: list[Any] = []
    monkeypatch.setattr(heap, "trim", lambda: trims.append(1) or True)
    bot, connector = _Bot(bot_released), _Connector(connector_released)
    task = asyncio.create_task(launch._release_idle(bot, [connector, object()], 0.01))  # type: ignore[arg-type]
    await asyncio.sleep(0.1)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert bot.calls >= 3 and connector.calls >= 3
    assert bool(trims) is trimmed


def test_heap_trim_is_available_on_glibc() -> None:
    assert heap.trim() in (True, False)
    if sys.platform == "linux":
        import platform

        if platform.libc_ver()[0] == "glibc":
            assert heap.trim()


def test_a_burst_expiring_a_few_fans_at_a_time_still_gets_its_tables_rebuilt() -> None:
    """Steady light traffic after a burst: each new fan's key read expires a few of the
    burst's fans at a time (QA): the rebuild counts them all since the last one."""
    now = [0.0]
    caches = FanCaches(idle_seconds=60, monotonic=lambda: now[0])
    for n in range(5000):  # 5,000 fans in 60 s
        now[0] = n * 0.012
        caches.keep_keys({f"fan{n}": KEY})
    grown = sys.getsizeof(caches._seen) + sys.getsizeof(caches.tokens)
    for n in range(600):  # then five new fans a second: more are held than go at each step
        now[0] = 61.0 + n / 5
        caches.keep_keys({f"late{n}": KEY})
    assert len(caches.keys) <= 301 and caches.expired > 4000  # the rest went as the 1,000 most recent were kept
    assert sys.getsizeof(caches._seen) + sys.getsizeof(caches.tokens) < grown / 4


async def test_fans_expired_as_the_caches_are_used_count_towards_reopening_sqlite(store: TranscriptStore) -> None:
    store.keep_recent(10, idle_seconds=0.2)
    fans = [f"fan{n}" for n in range(RELEASE_RECONNECT_FANS)]
    await store.run(lambda: store.hold_keys(fans, create=True))
    await asyncio.sleep(0.3)
    await store.run(lambda: store.hold_keys(["newcomer"], create=True))  # expires the burst on access
    assert not store.holds_key(fans[0])
    assert await store.release_idle() == len(fans)  # counted all the same
    assert store.engine.pool.checkedin() == 0


async def test_one_part_failing_to_release_stops_no_other(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    trims: list[Any] = []
    monkeypatch.setattr(heap, "trim", lambda: trims.append(1) or True)

    class Broken:
        def release_idle(self) -> int:
            raise AttributeError("not logged in")

    bot, connector = _Bot(0), _Connector(2)
    task = asyncio.create_task(launch._release_idle(bot, [Broken(), connector], 0.01))  # type: ignore[arg-type]
    await asyncio.sleep(0.05)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert connector.calls >= 2 and trims
    assert "releasing idle fans' memory failed (AttributeError)" in caplog.text


async def test_a_discord_client_never_logged_in_has_nothing_to_release() -> None:
    """A standby's REST client logs in only when first needed (connectors.discord_gateway)."""
    from bot.config import DiscordSettings
    from connectors.discord_connector import DiscordConnector
    from connectors.router import Router

    connector = DiscordConnector(DiscordSettings(), "token", Router(), None)
    assert connector.release_idle() == 0
