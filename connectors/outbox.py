"""An outbox per conversation: replies go out in order, are retried until delivered or
expired, and whoever queued one learns what became of it.

Why: a platform that answers 429 for ten seconds used to turn every reply into a log line
after the SDK's three retries, and a new fan's AI disclosure was lost while the store said it
was shown. Here a reply waits in its conversation's queue behind the ones before it; a
transient refusal (rate limit, server error, network) is retried, after the platform's
`Retry-After` when it gives one, with exponential backoff otherwise, until the reply's expiry
ceiling; a refusal that will not change (closed DMs, a deactivated account) ends it at once.

The disclosure rule: nothing queued behind an undelivered disclosure in the same conversation
is delivered before a new disclosure (those replies are dropped with it, counted), so an
answer never overtakes the AI disclosure. Queues live only while they hold replies: an idle
conversation costs nothing. Logs carry kinds, counts and reason codes, never content or ids.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from enum import Enum
from typing import Optional

from bot.messages import Kind

logger = logging.getLogger(__name__)

#: How long a reply may wait for its platform before it is dropped, unless configured
#: (`[assistant] reply_expiry_seconds`): long enough for Slack's and Discord's rate-limit
#: windows (a few seconds to a minute), short enough that an answer is still about the question.
DEFAULT_EXPIRY_SECONDS = 300.0
FIRST_BACKOFF_SECONDS = 0.5
MAX_BACKOFF_SECONDS = 30.0


class Retry(Exception):
    """The platform refused for now (rate limit, server error, network): try again later."""

    def __init__(self, reason: str, after: Optional[float] = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.after = after  # seconds, when the platform said (Retry-After)


class Unreachable(Exception):
    """The platform will not take this message for this recipient (closed DMs, deactivated
    account, archived channel, expired reply link): retrying cannot help. `reason` is a short
    code (see `REASONS`), never content or an id."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


#: What each reason code means, for the desk; no content, no ids.
REASONS = {
    "dms_closed": "their direct messages are closed to the assistant",
    "user_disabled": "their account is deactivated",
    "user_not_visible": "the platform does not let the assistant message them directly",
    "cannot_dm_bot": "the recipient is a bot",
    "conversation_gone": "the conversation is archived, deleted, or the assistant is no longer in it",
    "reply_link_expired": "the link to answer their last command has expired",
    "no_permission": "the assistant lacks the permission to post there",
}


def reason_text(reason: str) -> str:
    return REASONS.get(reason, "the platform refused the message")


class Status(str, Enum):
    DELIVERED = "delivered"
    EXPIRED = "expired"  # still refused when its expiry ceiling came
    UNREACHABLE = "unreachable"  # refused for good (see `Unreachable`)
    FAILED = "failed"  # an unexpected error (logged with its traceback), not retried
    DROPPED = "dropped"  # queued behind an undelivered disclosure


@dataclass(frozen=True)
class Outcome:
    status: Status
    reason: str = ""
    attempts: int = 0

    @property
    def delivered(self) -> bool:
        return self.status is Status.DELIVERED


Send = Callable[[], Awaitable[None]]
Report = Callable[[Outcome], Awaitable[None]]


@dataclass
class _Item:
    send: Send
    kind: Kind
    deadline: float
    future: asyncio.Future[Outcome]
    report: Optional[Report]


class Outbox:
    def __init__(
        self,
        expiry_seconds: float = DEFAULT_EXPIRY_SECONDS,
        *,
        first_backoff: float = FIRST_BACKOFF_SECONDS,
        max_backoff: float = MAX_BACKOFF_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.expiry_seconds = expiry_seconds
        self._first_backoff = first_backoff
        self._max_backoff = max_backoff
        self._clock = clock
        self._queues: dict[Hashable, deque[_Item]] = {}
        self._workers: dict[Hashable, asyncio.Task[None]] = {}
        #: Replies never delivered (expired, unreachable, failed, dropped), over the outbox's life.
        self.undelivered = 0

    @property
    def conversations(self) -> int:
        """Conversations with replies waiting (their queues are dropped once empty)."""
        return len(self._queues)

    def put(self, key: Hashable, send: Send, kind: Kind, report: Optional[Report] = None) -> asyncio.Future[Outcome]:
        """Queues `send` behind whatever `key` (a conversation, a desk ticket) already waits
        for; the future resolves with the outcome. Synchronous, so replies queued one after
        another from the same task keep their order."""
        item = _Item(send, kind, self._clock() + self.expiry_seconds, asyncio.get_running_loop().create_future(), report)
        queue = self._queues.get(key)
        if queue is None:
            queue = self._queues[key] = deque()
            self._workers[key] = asyncio.create_task(self._work(key, queue), name="outbox")
        queue.append(item)
        return item.future

    async def aclose(self) -> None:
        """Stops every queue; replies still waiting resolve as expired (shutdown)."""
        workers = list(self._workers.values())
        for worker in workers:
            worker.cancel()
        await asyncio.gather(*workers, return_exceptions=True)

    async def _work(self, key: Hashable, queue: deque[_Item]) -> None:
        try:
            while queue:
                item = queue.popleft()
                outcome = await self._attempt(item)
                await self._settle(item, outcome)
                if item.kind is Kind.DISCLOSURE and not outcome.delivered:
                    await self._drop_behind_disclosure(queue, outcome)
        finally:
            for item in queue:  # cancelled at shutdown
                await self._settle(item, Outcome(Status.EXPIRED, "shutdown"))
            queue.clear()
            del self._queues[key], self._workers[key]

    async def _attempt(self, item: _Item) -> Outcome:
        attempts, backoff, reason = 0, self._first_backoff, "queued too long"
        while True:
            if self._clock() >= item.deadline:
                return self._expired(item, reason, attempts)
            attempts += 1
            try:
                await item.send()
                return Outcome(Status.DELIVERED, "", attempts)
            except Unreachable as error:
                self.undelivered += 1
                logger.warning("a %s message is undeliverable: %s", item.kind.value, error.reason)
                return Outcome(Status.UNREACHABLE, error.reason, attempts)
            except Retry as error:
                reason = error.reason
                wait = error.after if error.after is not None else backoff
                backoff = min(backoff * 2, self._max_backoff)
                if self._clock() + wait >= item.deadline:  # it would be late anyway
                    return self._expired(item, reason, attempts)
                await asyncio.sleep(wait)
            except asyncio.CancelledError:
                raise
            except Exception:
                self.undelivered += 1
                logger.exception("could not deliver a %s message", item.kind.value)
                return Outcome(Status.FAILED, "error", attempts)

    def _expired(self, item: _Item, reason: str, attempts: int) -> Outcome:
        self.undelivered += 1
        logger.warning(
            "dropped a %s message not delivered within %gs (%d attempt(s), last: %s); %d undelivered so far",
            item.kind.value, self.expiry_seconds, attempts, reason, self.undelivered,
        )
        return Outcome(Status.EXPIRED, reason, attempts)

    async def _drop_behind_disclosure(self, queue: deque[_Item], outcome: Outcome) -> None:
        """Replies queued behind the undelivered disclosure, up to the next disclosure (the
        core queues a new one with the fan's next message), are dropped: none may arrive
        before the fan was told they talk to an AI."""
        dropped: list[_Item] = []
        while queue and queue[0].kind is not Kind.DISCLOSURE:
            dropped.append(queue.popleft())
        if dropped:
            self.undelivered += len(dropped)
            logger.warning("dropped %d message(s) queued behind an undelivered AI disclosure", len(dropped))
        for item in dropped:
            await self._settle(item, Outcome(Status.DROPPED, outcome.reason))

    @staticmethod
    async def _settle(item: _Item, outcome: Outcome) -> None:
        if not item.future.done():
            item.future.set_result(outcome)
        if item.report is not None:
            try:
                await item.report(outcome)
            except Exception:
                logger.exception("reporting a %s message's delivery failed", item.kind.value)
