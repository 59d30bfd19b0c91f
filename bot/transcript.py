"""What of an exchange is kept: minimized (redacted) turns, and only while the fan allows it.

Commands and rejected input are never kept; their effects are (in the audit log). The
disclosure is kept as a turn so a moderator can see when the fan was told they talk to
an AI.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Optional

from bot.messages import Kind, Outgoing
from bot.privacy.redact import redact
from bot.privacy.store import StoreUnavailable, TranscriptStore, Turn

logger = logging.getLogger(__name__)
KEPT_KINDS = frozenset({Kind.DISCLOSURE, Kind.ANSWER, Kind.FALLBACK, Kind.HANDOFF_OFFER})
ATTACHMENT = "[ATTACHMENT]"


def minimized(text: str, attachments: int = 0) -> str:
    """The text as it may be stored: personal data replaced by typed placeholders."""
    kept = redact(text).text
    return " ".join([kept, *[ATTACHMENT] * attachments]).strip()


class TranscriptWriter:
    def __init__(self, store: TranscriptStore, clock: Callable[[], datetime]) -> None:
        self._store = store
        self._clock = clock
        self._pending: set[asyncio.Future[None]] = set()

    async def record(
        self,
        fan: str,
        conversation: str,
        fan_text: Optional[str],
        attachments: int,
        replies: Sequence[Outgoing],
    ) -> int:
        """Queues the exchange's turns; returns how many (0 when logging is off).

        The reply does not wait for the disk: the write is queued in order (see
        `TranscriptStore.submit`) and `drain` waits for whatever is still queued.
        """
        try:
            check_later = False
            if not await self._store.logging_enabled(fan):
                return 0
        except StoreUnavailable:  # the choice is unknown now: the write checks it when it happens
            check_later = True
        at = self._clock()
        batch: list[Turn] = []
        if fan_text is not None:
            first_intent = next((r for r in replies if r.kind is not Kind.DISCLOSURE), None)
            batch.append(
                Turn(
                    fan, conversation, "fan", "message", at, minimized(fan_text, attachments),
                    first_intent.intent if first_intent else None,
                    first_intent.confidence if first_intent else None,
                )
            )
        for reply in replies:
            if reply.kind in KEPT_KINDS and (fan_text is not None or reply.kind is Kind.DISCLOSURE):
                role = "assistant" if reply.from_ai else "moderator"
                batch.append(Turn(fan, conversation, role, reply.kind.value, at, minimized(reply.text), reply.intent, reply.confidence))
        if batch:
            future = self._store.submit(*batch, check_logging=check_later)
            self._pending.add(future)
            future.add_done_callback(self._settled)
        return len(batch)

    def _settled(self, future: asyncio.Future[None]) -> None:
        self._pending.discard(future)
        if not future.cancelled() and future.exception() is not None:
            logger.error("a transcript write failed: %s", type(future.exception()).__name__)

    async def drain(self) -> None:
        """Waits until every queued write has reached the database."""
        if self._pending:
            await asyncio.gather(*list(self._pending), return_exceptions=True)
