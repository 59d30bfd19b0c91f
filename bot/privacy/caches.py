"""What one process holds in memory about fans between messages, in one place.

The data keys (with their versions), the `/privacy` choices, the recent turns for handoff
packets and the notice token of each fan held: a change announced by another process
(`bot.privacy.changes`) or an erasure here must drop all of a fan's entries at once, and the
store, its turn writes and its erasures all read them, so they share this one object.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from datetime import datetime

from bot.privacy.keys import DATA_KEY_CACHE
from bot.privacy.notify import fan_token
from bot.privacy.preferences import LoggingChoices
from bot.privacy.turns import RecentTurns


class FanCaches:
    """Store thread, except `generation` and the dict lookups of the event loop's fast paths.

    `generation` counts the changes announced by other processes (guarded by `lock`): a read
    started before a change is not kept, a write queued before one is re-checked."""

    def __init__(self) -> None:
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

    def hold_token(self, fan: str) -> None:
        """Remembers the fan's notice token while something of theirs is cached."""
        if len(self.tokens) > 4 * DATA_KEY_CACHE:  # rebuilt from what is still held
            held = [*list(self.keys), *self.logging.fans(), *self.recent.fans()]
            self.tokens = {fan_token(each): each for each in held}
        self.tokens[fan_token(fan)] = fan

    def holds(self, fan: str) -> bool:
        return fan in self.keys or fan in self.recent or fan in self.logging

    def drop(self, fan: str) -> None:
        """Forgets everything held of the fan (erased here or elsewhere)."""
        self.keys.pop(fan, None)
        self.logging.drop(fan)
        self.recent.drop(fan)

    def clear(self) -> None:
        """Trusts nothing held (notices may have been missed)."""
        self.keys.clear()
        self.logging.clear()
        self.recent.clear()
        self.tokens.clear()
