"""Handoff latency on the console desk with 100 concurrent handoffs.

Measures (1) from a fan's `/human` to the ticket packet for the desk (`Bot.handle`
returning it: ticket committed, the fan's last turns and disclosure time in the packet),
for 50 fans arriving within half a second and for 50 more in one burst, and (2) from a
moderator's reply to the message for the fan (`Bot.moderate`), for all 100 open handoffs
at once, on a real SQLite store. Then (3) after a restart (a new store and bot on the same
database): 50 returning fans write once and then press `/human` in one burst, and 50 press
`/human` as their first message since the restart (their history is read from the store,
nothing of it being in memory yet). Target: p99 under 50 ms (no platform network).
Neither path asks the model, so the fake engine stands in for it here.

    .venv/bin/python bench/handoff_latency.py [--fans 100] [--postgres-url URL]

With --postgres-url, point it at an empty database made for the run: the store's tables
are created there and left behind.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.config import AssistantSettings, HandoffSettings  # noqa: E402
from bot.conversation import ConversationMemory  # noqa: E402
from bot.core import Bot  # noqa: E402
from bot.handoff.actions import Claim, ModeratorAction, Reply, Resolve  # noqa: E402
from bot.messages import Incoming, Kind  # noqa: E402
from bot.privacy.crypto import MasterKeys  # noqa: E402
from bot.privacy.pseudonym import Pseudonymizer  # noqa: E402
from bot.privacy.store import TranscriptStore  # noqa: E402
from bot.testing.fake_engine import FakeEngine  # noqa: E402

TARGET_MS = 50.0


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def timed(coroutine) -> tuple[float, list]:  # type: ignore[no-untyped-def,type-arg]
    start = time.perf_counter()
    result = await coroutine
    return (time.perf_counter() - start) * 1000, result


def report(label: str, samples: list[float]) -> None:
    p50, p99 = percentile(samples, 0.5), percentile(samples, 0.99)
    print(f"{label}: p50 {p50:.1f} ms  p99 {p99:.1f} ms  max {max(samples):.1f} ms (target p99 < {TARGET_MS:g} ms, ratio {p99 / TARGET_MS:.2f})")


def new_bot(store: TranscriptStore, fans: int) -> Bot:
    return Bot(
        FakeEngine(), Pseudonymizer(b"bench-handoff-key-0123456789abcdef"), AssistantSettings(), ConversationMemory(3600),
        store, handoff=HandoffSettings(moderators=tuple(f"mod{i}" for i in range(fans)), history_turns=10),
    )


def packets(runs: list) -> list[str]:  # type: ignore[type-arg]
    return [next(r.text for r in replies if r.kind is Kind.HANDOFF_TICKET) for _, replies in runs]


async def measure(fans: int, url: str, spread: float) -> None:
    master = MasterKeys.parse(MasterKeys.generate())
    store = TranscriptStore.open(url, None, master)
    bot = new_bot(store, fans)
    for fan in range(fans):  # some history for each packet to carry
        for text in ("hello", "refund please, mail me at fan@example.com", "this is useless"):
            await bot.handle(Incoming("bench", f"fan{fan}", "d", text))
    await bot.drain()

    # Spread: the 100 fans ask for a person within `spread` seconds, so up to 100 handoffs
    # are open at once while new ones arrive. Burst: all in the same instant (worst case).
    half = fans // 2

    async def arrive(fan: int, delay: float):  # type: ignore[no-untyped-def]
        await asyncio.sleep(delay)
        return await timed(bot.handle(Incoming("bench", f"fan{fan}", "d", "/human")))

    spread_runs = await asyncio.gather(*(arrive(f, f * spread / half) for f in range(half)))
    burst_runs = await asyncio.gather(*(timed(bot.handle(Incoming("bench", f"fan{f}", "d", "/human"))) for f in range(half, fans)))
    started = [*spread_runs, *burst_runs]
    assert all(any(r.kind is Kind.HANDOFF_TICKET for r in replies) for _, replies in started)
    report(f"/human -> ticket at the desk, {half} fans over {spread:g} s", [ms for ms, _ in spread_runs])
    report(f"/human -> ticket at the desk, {fans - half} fans in one burst", [ms for ms, _ in burst_runs])

    tickets = [int(next(r.ticket for r in replies if r.kind is Kind.HANDOFF_TICKET)) for _, replies in started]
    claims = await asyncio.gather(
        *(bot.moderate(ModeratorAction(f"mod{i}", Claim(f"Mod {i}"), ticket, authorised=True)) for i, ticket in enumerate(tickets))
    )
    assert all(result[0].kind is Kind.MODERATOR_JOINED for result in claims)
    replies = await asyncio.gather(
        *(timed(bot.moderate(ModeratorAction(f"mod{i}", Reply("Thanks, looking into it now."), ticket, authorised=True))) for i, ticket in enumerate(tickets))
    )
    assert all(result[0].kind is Kind.MODERATOR_REPLY for _, result in replies)
    report(f"moderator reply -> message for the fan, {fans} concurrent", [ms for ms, _ in replies])
    await asyncio.gather(*(bot.moderate(ModeratorAction(f"mod{i}", Resolve(), ticket, authorised=True)) for i, ticket in enumerate(tickets)))
    await bot.drain()
    await store.aclose()

    store = TranscriptStore.open(url, None, master)  # a restart: nothing of the fans in memory
    bot = new_bot(store, fans)
    for fan in range(half):
        await bot.handle(Incoming("bench", f"fan{fan}", "d", "back again"))
    returning = await asyncio.gather(*(timed(bot.handle(Incoming("bench", f"fan{f}", "d", "/human"))) for f in range(half)))
    first = await asyncio.gather(*(timed(bot.handle(Incoming("bench", f"fan{f}", "d", "/human"))) for f in range(half, fans)))
    assert all("[EMAIL]" in packet for packet in packets([*returning, *first]))  # the history before the restart
    report(f"after a restart: /human -> ticket, {half} returning fans in one burst", [ms for ms, _ in returning])
    report(f"after a restart: /human as first message, {fans - half} fans in one burst", [ms for ms, _ in first])
    await bot.drain()
    await store.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fans", type=int, default=100)
    parser.add_argument("--spread", type=float, default=0.5, help="seconds over which the first half of the fans arrive")
    parser.add_argument("--postgres-url", help="measure on this PostgreSQL database instead of a temporary SQLite file")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-handoff-") as folder:
        url = args.postgres_url or f"sqlite:///{folder}/transcripts.db"
        print(f"store: {'PostgreSQL' if args.postgres_url else 'SQLite'}")
        asyncio.run(measure(args.fans, url, args.spread))


if __name__ == "__main__":
    main()
