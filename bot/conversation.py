"""Per-conversation memory the policy needs: disclosure shown, fallback streak, last answer.

Held in memory for as long as the conversation is active (the same idle limit as the
model's tracker), so an idle conversation that comes back is a first contact again.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Optional


@dataclass(frozen=True)
class Explanation:
    """Why the last answer was what it was, for `/why`."""

    source: str  # "model", "guard" or "fallback"
    intent: Optional[str]
    confidence: Optional[float]
    guess: Optional[str] = None


@dataclass
class ConversationState:
    """Content-free: flags and names of questions, never what the fan wrote."""

    disclosed: bool = False
    consecutive_fallbacks: int = 0
    handoff_offered: Optional[str] = None  # the reason, while an offer awaits a yes
    pending_erasure: bool = False
    ask_back: Optional[str] = None  # the action awaiting a yes after words too unsure to act on
    asked_again: bool = False  # an unclear reply to the pending question was asked about once
    last_answer: Optional[Explanation] = None
    last_seen: float = field(default=0.0)

    @property
    def pending(self) -> bool:
        """A yes/no question of the assistant's awaits an answer."""
        return bool(self.handoff_offered or self.pending_erasure or self.ask_back)

    def clear_pending(self) -> None:
        self.handoff_offered, self.pending_erasure, self.ask_back, self.asked_again = None, False, None, False


class ConversationMemory:
    def __init__(self, idle_seconds: float, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._idle_seconds = idle_seconds
        self._monotonic = monotonic
        self._by_fan: dict[str, dict[str, ConversationState]] = {}
        self._swept = monotonic()
        self.dropped = 0  #: conversations dropped as idle so far (tells when memory can be given back)

    @property
    def idle_seconds(self) -> float:
        return self._idle_seconds

    def __len__(self) -> int:
        """Conversations held (for checks and the soak benchmark)."""
        return sum(len(conversations) for conversations in self._by_fan.values())

    def state(self, fan: str, conversation: str) -> ConversationState:
        now = self._monotonic()
        if now - self._swept > min(60.0, self._idle_seconds / 4):  # amortised: memory stays bounded by activity
            self._swept = now
            self.expire_idle()
        conversations = self._by_fan.setdefault(fan, {})
        current = conversations.get(conversation)
        if current is None or now - current.last_seen > self._idle_seconds:
            current = conversations[conversation] = ConversationState()
        current.last_seen = now
        return current

    def conversations_of(self, fan: str) -> list[ConversationState]:
        return list(self._by_fan.get(fan, {}).values())

    def forget(self, fan: str) -> int:
        """Drops every conversation of the fan; returns how many there were."""
        return len(self._by_fan.pop(fan, {}))

    def expire_idle(self) -> int:
        cutoff = self._monotonic() - self._idle_seconds
        dropped = 0
        for fan in list(self._by_fan):
            conversations = self._by_fan[fan]
            for key in [k for k, state in conversations.items() if state.last_seen < cutoff]:
                del conversations[key]
                dropped += 1
            if not conversations:
                del self._by_fan[fan]
        self.dropped += dropped
        return dropped
