"""Rasa's tracker kept in memory only, dropped after an idle period or on request.

Rasa's trackers hold plaintext events, so they never touch disk here. Saving also notes
the latest parse, which lets the engine report intent and confidence without
deserialising the tracker again.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Dict, Iterable, Optional, Text

from bot.quiet import quiet_rasa

quiet_rasa()  # before the first Rasa import, which would otherwise warn and log

from rasa.core.tracker_store import InMemoryTrackerStore  # noqa: E402
from rasa.shared.core.trackers import DialogueStateTracker  # noqa: E402


class ExpiringInMemoryTrackerStore(InMemoryTrackerStore):
    def __init__(self, idle_seconds: float, monotonic: Callable[[], float] = time.monotonic) -> None:
        super().__init__(domain=None)  # type: ignore[arg-type]  # Agent sets the domain
        self._idle_seconds = idle_seconds
        self._monotonic = monotonic
        self._last_seen: Dict[Text, float] = {}
        self.latest_parse: Dict[Text, Dict[Text, Any]] = {}

    def expire_idle(self) -> int:
        """Drops trackers idle for longer than the limit; returns how many."""
        cutoff = self._monotonic() - self._idle_seconds
        stale = [sender for sender, seen in self._last_seen.items() if seen < cutoff]
        for sender in stale:
            self.drop(sender)
        return len(stale)

    def drop(self, sender_id: Text) -> bool:
        self._last_seen.pop(sender_id, None)
        self.latest_parse.pop(sender_id, None)
        return self.store.pop(sender_id, None) is not None

    async def save(self, tracker: DialogueStateTracker) -> None:
        await super().save(tracker)
        self._last_seen[tracker.sender_id] = self._monotonic()
        parse = tracker.latest_message.parse_data if tracker.latest_message else {}
        self.latest_parse[tracker.sender_id] = {
            "intent": parse.get("intent") or {},
            "intent_ranking": parse.get("intent_ranking") or [],
        }

    async def retrieve(self, sender_id: Text) -> Optional[DialogueStateTracker]:
        self.expire_idle()
        return await super().retrieve(sender_id)

    async def retrieve_full_tracker(self, sender_id: Text) -> Optional[DialogueStateTracker]:
        self.expire_idle()
        return await super().retrieve_full_tracker(sender_id)

    async def keys(self) -> Iterable[Text]:
        self.expire_idle()
        return await super().keys()
