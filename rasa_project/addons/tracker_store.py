"""Rasa's tracker kept in memory only, dropped after an idle period or on request.

Rasa's trackers hold plaintext events, so they never touch disk here. Saving also notes
the latest parse, which lets the channel report intent and confidence without
deserialising the tracker again. Declared in endpoints.yml (`type:
addons.tracker_store.ExpiringInMemoryTrackerStore`); Rasa constructs it with `host`, `domain`,
`event_broker` and the entry's other keys (`rasa.core.tracker_store.
_load_from_module_name_in_endpoint_config`).
"""

from __future__ import annotations

import math
import sys
import time
from typing import Any, Callable, Dict, Iterable, Optional, Text, Union

from rasa.core.tracker_store import InMemoryTrackerStore
from rasa.shared.core.trackers import DialogueStateTracker

IDLE_VARIABLE = "BOT_ENGINE_TRACKER_IDLE_SECONDS"


def idle_seconds_from(value: Union[str, float, None]) -> float:
    """The idle limit from endpoints.yml (a string after Rasa's `${VAR}` interpolation).

    A bad value is one line and exit 2: Rasa would otherwise swallow an AttributeError or
    ImportError here and fall back to a store that never expires."""
    try:
        seconds = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        seconds = math.nan
    if not math.isfinite(seconds) or seconds <= 0:
        print(f"model server: {IDLE_VARIABLE} must be a positive number of seconds, got {value!r}", file=sys.stderr)
        raise SystemExit(2)
    return seconds


class ExpiringInMemoryTrackerStore(InMemoryTrackerStore):
    def __init__(
        self,
        idle_seconds: Union[str, float, None] = None,
        host: Optional[str] = None,
        domain: Any = None,
        event_broker: Any = None,
        monotonic: Callable[[], float] = time.monotonic,
        **kwargs: Any,
    ) -> None:
        del host  # nothing to connect to: the trackers live in this process only
        super().__init__(domain=domain, event_broker=event_broker, **kwargs)  # Agent sets the domain
        self._idle_seconds = idle_seconds_from(idle_seconds)
        self._monotonic = monotonic
        self._last_seen: Dict[Text, float] = {}
        self.latest_parse: Dict[Text, Dict[Text, Any]] = {}

    @property
    def idle_seconds(self) -> float:
        return self._idle_seconds

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
