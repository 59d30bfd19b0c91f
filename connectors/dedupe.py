"""Remembering recent delivery ids and message keys, so a platform's retry or second delivery
never produces a second reply."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any, Optional


class RecentKeys:
    """A bounded, expiring set: `first_time(key)` is True once per key within `ttl_seconds`."""

    def __init__(self, ttl_seconds: float = 3600.0, max_keys: int = 20_000, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl = ttl_seconds
        self._max = max_keys
        self._clock = clock
        self._seen: OrderedDict[str, float] = OrderedDict()

    def first_time(self, key: Optional[str]) -> bool:
        """Records the key; a missing key (None or "") counts as new, since it cannot repeat."""
        if not key:
            return True
        now = self._clock()
        while self._seen and (len(self._seen) >= self._max or next(iter(self._seen.values())) < now - self._ttl):
            self._seen.popitem(last=False)
        if key in self._seen:
            return False
        self._seen[key] = now
        return True


def slack_message_key(event: Mapping[str, Any]) -> Optional[str]:
    """One key per Slack message, whatever delivery brought it: its channel and ts (unique in a
    channel) prefixed by the event type, so a mention's `message` and `app_mention` copies stay
    apart. A redelivery under a new event_id keeps both (and the client_msg_id)."""
    channel, ts = event.get("channel"), event.get("ts")
    if channel and ts:
        return f"{event.get('type', 'message')}:{channel}:{ts}"
    msg_id = event.get("client_msg_id")
    return f"{event.get('type', 'message')}:{msg_id}" if msg_id else None
