"""A dialogue engine without a model, for fast unit tests of the policy around it.

It matches keywords to intents and records what it was asked, so tests can check that
only pseudonyms reach the engine. Integration tests use the real trained model instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from bot.engine import FALLBACK_INTENT, EngineResult

DEFAULT_RULES: dict[str, tuple[str, float]] = {
    "hello": ("greet", 0.97),
    "bye": ("goodbye", 0.95),
    "yes": ("affirm", 0.93),
    "no": ("deny", 0.93),
    "refund": ("faq_billing", 0.91),
    "password": ("faq_login", 0.9),
    "useless": ("complaint", 0.88),
    "person": ("human_handoff", 0.9),
    "delete": ("forget_me", 0.9),
    "store": ("privacy_info", 0.9),
    "data": ("my_data", 0.9),
    "weather": ("out_of_scope", 0.85),
    "robot": ("bot_challenge", 0.8),
    "crash": ("__raise__", 1.0),
}


@dataclass
class FakeEngine:
    rules: dict[str, tuple[str, float]] = field(default_factory=lambda: dict(DEFAULT_RULES))
    seen: list[tuple[str, str]] = field(default_factory=list)
    histories: dict[str, int] = field(default_factory=dict)

    async def respond(self, pseudonym: str, text: str) -> EngineResult:
        self.seen.append((pseudonym, text))
        for keyword, (intent, confidence) in self.rules.items():
            if keyword in text.lower():
                if intent == "__raise__":
                    raise RuntimeError("fake engine failure")
                self.histories[pseudonym] = self.histories.get(pseudonym, 0) + 1
                return EngineResult((f"[{intent} answer]",), intent, confidence)
        self.histories[pseudonym] = self.histories.get(pseudonym, 0) + 1
        return EngineResult(("[default]",), FALLBACK_INTENT, 0.21, guess="faq_playback")

    async def forget(self, pseudonym: str) -> int:
        return 1 if self.histories.pop(pseudonym, None) is not None else 0

    def history_of(self, pseudonym: str) -> Optional[int]:
        return self.histories.get(pseudonym)
