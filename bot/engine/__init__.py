"""The dialogue engine contract: what the core needs from a model, nothing more."""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass
from typing import Optional, Protocol

FALLBACK_INTENT = "nlu_fallback"

#: When the message being answered reached this process (`time.monotonic()`), set by the edge
#: that held it before the pipeline (`connectors.intake`): a message that waited there while
#: its fan was erased is dropped (`Bot.handle`). None: it arrived just now.
ARRIVED: ContextVar[Optional[float]] = ContextVar("arrived", default=None)


class ModelMissingError(FileNotFoundError):
    """No trained model where the config points; the operator must train first."""


class EngineUnavailable(RuntimeError):
    """No model server gave a usable answer (down, too slow, or garbage). The message is one
    line naming the server and the fault, never the fan's text; the fan gets an honest reply."""


class EngineStarting(EngineUnavailable):
    """The embedded model server is still loading the model."""


@dataclass(frozen=True)
class EngineResult:
    """What the model said and why.

    For a low-confidence message `intent` is `FALLBACK_INTENT`, `guess` is the best real
    intent and `confidence` that intent's score, so `/why` can be honest about it.
    """

    texts: tuple[str, ...]
    intent: Optional[str]
    confidence: Optional[float]
    guess: Optional[str] = None
    #: The real intents' scores, best first (`nlu_fallback` excluded).
    ranking: tuple[tuple[str, float], ...] = ()


class DialogueEngine(Protocol):
    async def respond(self, pseudonym: str, text: str) -> EngineResult:
        """Answers one fan message; `pseudonym` is the only identity the engine sees."""

    async def forget(self, pseudonym: str) -> int:
        """Drops everything held about the fan; returns how many conversations were dropped."""
