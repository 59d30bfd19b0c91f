"""The outbox's rules on plain send functions (a platform that refuses as scripted): order per
conversation, retries honouring Retry-After, nothing delivered behind a lost disclosure,
queues dropped when idle. No clock is read by an assertion."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from bot.messages import Kind
from connectors.outbox import Outbox, Outcome, Retry, Status, Unreachable


class Platform:
    """Records what got through; `refuse[name]` lists the errors its next attempts raise."""

    def __init__(self) -> None:
        self.delivered: list[str] = []
        self.refuse: dict[str, list[Exception]] = {}

    def send(self, name: str) -> Callable[[], Awaitable[None]]:
        async def attempt() -> None:
            errors = self.refuse.get(name)
            if errors:
                raise errors.pop(0)
            self.delivered.append(name)

        return attempt


async def test_replies_go_out_in_order_after_retries_that_honour_retry_after() -> None:
    platform, outbox = Platform(), Outbox(60, first_backoff=0.01)
    platform.refuse["d"] = [Retry("ratelimited", after=0.02), Retry("ratelimited", after=0.01)]
    futures = [outbox.put("c", platform.send(name), kind) for name, kind in (("d", Kind.DISCLOSURE), ("a", Kind.ANSWER))]
    outcomes = await asyncio.gather(*futures)
    assert platform.delivered == ["d", "a"]
    assert outcomes == [Outcome(Status.DELIVERED, "", 3), Outcome(Status.DELIVERED, "", 1)]
    assert outbox.conversations == 0 and outbox.undelivered == 0


async def test_a_retry_after_past_the_ceiling_expires_at_once() -> None:
    platform, outbox = Platform(), Outbox(0.2)
    platform.refuse["a"] = [Retry("ratelimited", after=30)]
    outcome = await outbox.put("c", platform.send("a"), Kind.ANSWER)
    assert outcome == Outcome(Status.EXPIRED, "ratelimited", 1) and outbox.undelivered == 1


async def test_nothing_behind_a_lost_disclosure_goes_out_before_the_next_disclosure() -> None:
    platform, outbox = Platform(), Outbox(60)
    platform.refuse["d1"] = [Unreachable("dms_closed")]
    reported: list[Outcome] = []

    async def report(outcome: Outcome) -> None:
        reported.append(outcome)

    names = [("d1", Kind.DISCLOSURE), ("a1", Kind.ANSWER), ("a2", Kind.ANSWER), ("d2", Kind.DISCLOSURE), ("a3", Kind.ANSWER)]
    futures = [outbox.put("c", platform.send(name), kind, report) for name, kind in names]
    other = outbox.put("elsewhere", platform.send("x"), Kind.ANSWER)
    outcomes = await asyncio.gather(*futures, other)
    assert [o.status for o in outcomes] == [Status.UNREACHABLE, Status.DROPPED, Status.DROPPED, Status.DELIVERED, Status.DELIVERED, Status.DELIVERED]
    assert platform.delivered.index("d2") < platform.delivered.index("a3") and "a1" not in platform.delivered
    assert len(reported) == 5 and outbox.undelivered == 3


async def test_an_unexpected_error_is_not_retried_and_stops_nothing_else() -> None:
    platform, outbox = Platform(), Outbox(60)
    platform.refuse["a"] = [RuntimeError("bug")]
    outcomes = await asyncio.gather(outbox.put("c", platform.send("a"), Kind.ANSWER), outbox.put("c", platform.send("b"), Kind.ANSWER))
    assert [o.status for o in outcomes] == [Status.FAILED, Status.DELIVERED] and platform.delivered == ["b"]
