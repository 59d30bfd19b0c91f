"""Following changes announced by other processes (`bot.privacy.notify` delivers them).

Another process may erase a fan, change their `/privacy` choice or rewrap the keys while
this one holds them in its caches or has their turns queued. `Changes` drops what became
wrong and remembers, per fan token, the generation of the last change, so a write queued
before it is refused (erased) or re-checked (preference) when it reaches the store thread.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Optional

from bot.privacy.caches import FanCaches
from bot.privacy.notify import ERASED, EVERY_FAN, KEYS, PREFERENCE, fan_token
from bot.privacy.turns import Turn

#: How long an erasure is remembered (`Changes.erased_since`): longer than any wait in an intake.
ERASED_KEPT_SECONDS = 3600.0

logger = logging.getLogger(__name__)


class Changes:
    """The listener thread records (`changed`), the store thread drops, the event loop runs
    the callbacks of fans erased elsewhere. Counters guarded by `caches.lock`."""

    def __init__(self, caches: FanCaches, on_store_thread: Callable[..., None]) -> None:
        self.origin = uuid.uuid4().hex[:12]  # this store's own notices are not news to it
        self._caches = caches
        self._on_store_thread = on_store_thread  # (work, *args): queued on the store thread
        self._changed: dict[str, tuple[int, bool]] = {}  # token -> (generation, erased)
        #: When each fan was last erased (time.monotonic), by token, for `ERASED_KEPT_SECONDS`:
        #: here (`note_erased`), or announced by another process, whether or not the fan is held
        #: here. Messages of the fan that waited in an intake meanwhile are dropped (bot.core).
        self._erasures: dict[str, float] = {}
        self._all_changed = 0  # generation of the last "trust nothing" (the listener reconnected)
        self._erased_callbacks: list[Callable[[str], Awaitable[None]]] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self.loop: Optional[asyncio.AbstractEventLoop] = None  # the store's event loop, once used

    def when_erased_elsewhere(self, callback: Callable[[str], Awaitable[None]]) -> None:
        self._erased_callbacks.append(callback)

    def changed(self, kind: str, token: str, origin: str) -> None:
        """Listener thread: see `TranscriptStore.changed`."""
        if origin == self.origin:
            return
        caches = self._caches
        with caches.lock:
            caches.generation += 1
            if token != EVERY_FAN:
                before = self._changed.get(token, (0, False))
                self._changed[token] = (caches.generation, before[1] or kind == ERASED)
                if kind == ERASED:
                    self._erased(token, time.monotonic())
        self._on_store_thread(self._drop_changed, kind, token)

    def note_erased(self, fan: str, at: float) -> None:
        """This process erased the fan, on a request that reached it at `at` (time.monotonic)."""
        with self._caches.lock:
            self._erased(fan_token(fan), at)

    def _erased(self, token: str, at: float) -> None:
        """Caller holds `caches.lock`."""
        now = time.monotonic()
        for old in [t for t, when in self._erasures.items() if now - when > ERASED_KEPT_SECONDS]:
            del self._erasures[old]
        self._erasures[token] = max(at, self._erasures.get(token, at))

    def erased_since(self, fan: str) -> Optional[float]:
        """When the fan was last erased (monotonic), here or announced by another process,
        within the last `ERASED_KEPT_SECONDS`; None if not."""
        with self._caches.lock:
            return self._erasures.get(fan_token(fan))

    def drop_all_cached(self) -> None:
        with self._caches.lock:
            self._caches.generation += 1
            self._all_changed = self._caches.generation
        self._on_store_thread(self._caches.clear)

    def _drop_changed(self, kind: str, token: str) -> None:
        """Store thread: drops what a change made wrong."""
        caches = self._caches
        if token == EVERY_FAN:
            if kind == KEYS:  # rewrapped: the same keys, but the cache is never trusted across a change
                caches.keys.clear()
            return
        fan = caches.tokens.get(token)
        if fan is None:  # nothing of this fan held here
            return
        if kind == PREFERENCE:
            caches.logging.drop(fan)
            return
        held = caches.holds(fan)
        caches.drop(fan)
        caches.tokens.pop(token, None)
        if held and kind == ERASED and self.loop is not None and self._erased_callbacks:
            self.loop.call_soon_threadsafe(self._spawn_erased, fan)

    def _spawn_erased(self, fan: str) -> None:
        for callback in self._erased_callbacks:
            task = asyncio.ensure_future(callback(fan))
            self._tasks.add(task)
            task.add_done_callback(self._erased_done)

    def _erased_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("dropping an erased fan's state failed: %s", type(task.exception()).__name__)

    def fresh(self, batch: tuple[Turn, ...], check_logging: bool, generation: int) -> tuple[tuple[Turn, ...], bool]:
        """A queued batch as it may still be written: without the turns of fans erased
        elsewhere since it was queued; re-checking `/privacy` when a preference changed (or
        notices may have been missed) since."""
        with self._caches.lock:
            if generation >= self._caches.generation:
                return batch, check_logging
            check_logging = check_logging or generation < self._all_changed
            erased = set()
            for fan in {turn.fan for turn in batch}:
                changed, was_erased = self._changed.get(fan_token(fan), (0, False))
                if changed > generation:
                    check_logging = True
                    if was_erased:
                        erased.add(fan)
        return tuple(turn for turn in batch if turn.fan not in erased), check_logging

    def forget(self) -> None:
        """No write queued before the changes recorded is left (caller holds `caches.lock`)."""
        self._changed.clear()
