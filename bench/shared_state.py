"""What shared state costs per message (issue 16): `Bot.handle` p50 and p99 with the state in
the database (conversation row read and written back, delivery key inserted, on PostgreSQL the
per-fan advisory lock) against the same bot keeping it in process memory, in the same run.

The in-memory variant is the old behaviour rebuilt here (a dict of states, a set of delivery
keys, the in-process lock only); the fake engine answers at once, and transcripts go to the
same store in both, so the difference is the shared-state path alone. Target: added p50 at
most 3 ms. Figures only: nothing asserts, the exit status is 0.

    .venv/bin/python bench/shared_state.py [--messages 2000] [--fans 50]

With BOT_BENCH_POSTGRES_URL set (a server URL; a throwaway database is created on it and
dropped), PostgreSQL is measured too.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import create_engine  # noqa: E402

from bench.scratch_database import scratch_database  # noqa: E402
from bot.config import AssistantSettings  # noqa: E402
from bot.conversation import ConversationMemory, ConversationState  # noqa: E402
from bot.core import Bot  # noqa: E402
from bot.locks import FanLocks  # noqa: E402
from bot.messages import Incoming  # noqa: E402
from bot.privacy.crypto import MasterKeys  # noqa: E402
from bot.privacy.pseudonym import Pseudonymizer  # noqa: E402
from bot.privacy.store import TranscriptStore  # noqa: E402
from bot.testing.fake_engine import FakeEngine  # noqa: E402

KEY = b"bench-shared-state-key-0123456789abcdef"
TARGET_MS = 3.0


class InMemory(ConversationMemory):
    """The pre-issue-16 behaviour: the state in this process only."""

    def __init__(self, idle_seconds: float) -> None:
        super().__init__(idle_seconds)
        self._states: dict[str, ConversationState] = {}

    async def load(self, fan: str, conversation: str) -> ConversationState:
        return self._states.setdefault(conversation, ConversationState(started=time.time()))

    async def save(self, fan: str, conversation: str, state: ConversationState) -> None:
        self._states[conversation] = state


class InMemoryKeys:
    def __init__(self) -> None:
        self._seen: set[str] = set()

    async def first_time(self, key: Optional[str]) -> bool:
        if not key or key not in self._seen:
            self._seen.add(key or "")
            return True
        return False


async def measure(bot: Bot, messages: int, fans: int, label: str) -> list[float]:
    texts = ("I forgot my password", "when is the next episode?", "my stream keeps buffering", "/why")
    for fan in range(fans):  # first contacts (keys made) outside the timing
        await bot.handle(Incoming("slack", f"U{label}{fan}", "D", "hello"))
    await bot.drain()
    timings = []
    for number in range(messages):
        start = time.perf_counter()
        await bot.deliveries.first_time(f"slack:Ev{label}{number}")  # what the connector asks first
        await bot.handle(Incoming("slack", f"U{label}{number % fans}", "D", texts[number % len(texts)]))
        timings.append((time.perf_counter() - start) * 1000)
    await bot.drain()
    return timings


def summary(timings: list[float]) -> tuple[float, float]:
    ordered = sorted(timings)
    return statistics.median(ordered), ordered[int(len(ordered) * 0.99) - 1]


async def compare(url: str, name: str, messages: int, fans: int) -> None:
    store = TranscriptStore.open(url, None, MasterKeys.parse(MasterKeys.generate()), KEY)
    try:
        memory = InMemory(1800)
        old = Bot(FakeEngine(), Pseudonymizer(KEY), AssistantSettings(), memory, store)
        old._locks = FanLocks(create_engine("sqlite://"))  # in-process lock only, as before
        old.deliveries = InMemoryKeys()  # type: ignore[assignment]
        new = Bot(FakeEngine(), Pseudonymizer(KEY), AssistantSettings(), ConversationMemory(1800), store)
        results: dict[str, list[float]] = {"in-memory": [], "shared": []}
        for _ in range(2):  # interleaved rounds: drift of the machine hits both alike
            results["in-memory"] += await measure(old, messages // 2, fans, f"o{len(results['in-memory'])}-")
            results["shared"] += await measure(new, messages // 2, fans, f"n{len(results['shared'])}-")
        (old_p50, old_p99), (new_p50, new_p99) = summary(results["in-memory"]), summary(results["shared"])
        print(f"{name}: Bot.handle per message, {messages} messages, {fans} fans, fake engine")
        print(f"  in-memory state   p50 {old_p50:6.2f} ms   p99 {old_p99:6.2f} ms")
        print(f"  shared (database) p50 {new_p50:6.2f} ms   p99 {new_p99:6.2f} ms")
        added = new_p50 - old_p50
        print(f"  added p50 {added:+.2f} ms (target <= {TARGET_MS:g} ms: {'met' if added <= TARGET_MS else 'NOT met'}); "
              f"added p99 {new_p99 - old_p99:+.2f} ms")
        new._locks.close()
    finally:
        await store.aclose()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--fans", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        await compare(f"sqlite:///{folder}/bench.db", "SQLite", args.messages, args.fans)
    server = os.environ.get("BOT_BENCH_POSTGRES_URL")
    if not server:
        print("(PostgreSQL skipped: set BOT_BENCH_POSTGRES_URL)")
        return
    with scratch_database(server) as url:
        await compare(url, "PostgreSQL", args.messages, args.fans)


if __name__ == "__main__":
    asyncio.run(main())
