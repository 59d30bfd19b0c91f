"""What one process holds in memory about fans between messages, in one place.

The data keys (with their versions), the `/privacy` choices, the recent turns for handoff
packets and the notice token of each fan held: a change announced by another process
(`bot.privacy.changes`) or an erasure here must drop all of a fan's entries at once, and the
store, its turn writes and its erasures all read them, so they share this one object.

Every entry goes with its fan's conversation: a fan idle for `idle_seconds` (the conversation
idle limit) is dropped from all of them at once (`expire`). Bounded by count alone, a burst of
5,000 fans left 5,000 keys and tokens held for good, scattered over the allocator's arenas so
that none could be given back (issue 11, `bench/soak.py`).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from datetime import datetime

from bot.privacy.keys import DATA_KEY_CACHE
from bot.privacy.notify import fan_token
from bot.privacy.preferences import LoggingChoices
from bot.privacy.turns import RecentTurns


class FanCaches:
    """Store thread, except `generation` and the dict lookups of the event loop's fast paths.

    `generation` counts the changes announced by other processes (guarded by `lock`): a read
    started before a change is not kept, a write queued before one is re-checked."""

    def __init__(self, idle_seconds: float = 0.0, monotonic: Callable[[], float] = time.monotonic) -> None:
        #: A fan unused this long is dropped from every cache (`expire`); 0: never for idleness.
        self.idle_seconds = idle_seconds
        self._monotonic = monotonic
        #: When each fan held here was last used, least recently used first (a plain dict keeps
        #: insertion order, and is smaller than an OrderedDict: one entry per active fan).
        self._seen: dict[str, float] = {}
        #: Fans dropped for idleness over the object's life (`expire`, here or on access).
        self.expired = 0
        self._since_rebuild = 0
        #: Each data key with its version, the row's `created_at`: a key made after an
        #: erasure is another version, so a cache or a queued write of the old one is refused.
        self.keys: OrderedDict[str, tuple[bytes, datetime]] = OrderedDict()
        self.logging = LoggingChoices()
        self.recent = RecentTurns()
        self.tokens: dict[str, str] = {}  # fans held in a cache, by their notice token
        self.lock = threading.Lock()
        self.generation = 0

    def keep_keys(self, held: dict[str, tuple[bytes, datetime]]) -> None:
        """Caches keys just read, dropping the least recently used past `DATA_KEY_CACHE`."""
        for fan, key in held.items():
            self.hold_token(fan)
            self.keys[fan] = key
        while len(self.keys) > DATA_KEY_CACHE:
            self.keys.popitem(last=False)
        self.expire()

    def hold_token(self, fan: str) -> None:
        """Remembers the fan's notice token while something of theirs is cached."""
        if len(self.tokens) > 4 * DATA_KEY_CACHE:  # rebuilt from what is still held
            held = [*list(self.keys), *self.logging.fans(), *self.recent.fans()]
            self.tokens = {fan_token(each): each for each in held}
        self.tokens[fan_token(fan)] = fan
        self.touch(fan)

    def touch(self, fan: str) -> None:
        """The fan's cached data was just used: their idle time starts again."""
        self._seen.pop(fan, None)
        self._seen[fan] = self._monotonic()
        while len(self._seen) > 4 * DATA_KEY_CACHE:  # without idle expiry, a bound all the same
            del self._seen[next(iter(self._seen))]

    def expire(self) -> int:
        """Drops everything held of each fan unused for `idle_seconds` (store thread); returns
        how many fans. Cheap when nobody is due: the least recently used fan comes first."""
        if self.idle_seconds <= 0:
            return 0
        cutoff = self._monotonic() - self.idle_seconds
        dropped = 0
        while self._seen:
            fan, seen = next(iter(self._seen.items()))
            if seen > cutoff:
                break
            self.drop(fan)
            self.tokens.pop(fan_token(fan), None)
            dropped += 1
        self.expired += dropped
        self._since_rebuild += dropped
        # A dict never shrinks its table on deletes: rebuilt once more fans went since the last
        # rebuild than are held now (a burst gone idle, at once or a few at a time).
        if dropped and self._since_rebuild > max(len(self._seen), 256):
            self._since_rebuild = 0
            self._seen = dict(self._seen)
            self.keys = OrderedDict(self.keys)
            self.tokens = dict(self.tokens)
            self.logging.compact()
            self.recent.compact()
        return dropped

    def holds(self, fan: str) -> bool:
        return fan in self.keys or fan in self.recent or fan in self.logging

    def drop(self, fan: str) -> None:
        """Forgets everything held of the fan (erased here or elsewhere)."""
        self.keys.pop(fan, None)
        self.logging.drop(fan)
        self.recent.drop(fan)
        self._seen.pop(fan, None)

    def clear(self) -> None:
        """Trusts nothing held (notices may have been missed)."""
        self.keys.clear()
        self.logging.clear()
        self.recent.clear()
        self.tokens.clear()
        self._seen.clear()
