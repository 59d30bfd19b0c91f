"""50 `/human` in one burst across 2 workers (issue 16): p99 from the burst to the ticket's
packet posted at the desk, with tickets owned by the database (no in-process index).

Each worker is a real separate process with its own store on one PostgreSQL: it handles its
share of the fans' `/human` at once and posts each packet through a `Router` to a console
desk, noting when (wall clock: the workers share the burst's start time). The fake engine is
not asked (a command). Target: p99 at most 50 ms. Figures only; the exit status is 0.

    BOT_BENCH_POSTGRES_URL=postgresql://... .venv/bin/python bench/handoff_workers.py [--fans 50] [--workers 2] [--rounds 5]

(`tests/with_postgres.sh` sets BOT_TEST_POSTGRES_URL, which is used when the former is not set.)
A throwaway database is created on that server and dropped.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


from bench.scratch_database import scratch_database  # noqa: E402
from bot.config import AssistantSettings, HandoffSettings  # noqa: E402
from bot.conversation import ConversationMemory  # noqa: E402
from bot.core import Bot  # noqa: E402
from bot.handoff.desk import ConsoleDesk  # noqa: E402
from bot.messages import Incoming, Kind, Outgoing  # noqa: E402
from bot.privacy.crypto import MasterKeys  # noqa: E402
from bot.privacy.pseudonym import Pseudonymizer  # noqa: E402
from bot.privacy.store import TranscriptStore  # noqa: E402
from bot.testing.fake_engine import FakeEngine  # noqa: E402
from connectors.router import Router  # noqa: E402

KEY = b"handoff-workers-bench-pseudonym-key-0123456789"


async def worker(url: str, master: str, index: int, workers: int, fans: int, rounds: int, starts: list[float]) -> list[float]:
    """One worker process: its share of each burst; the seconds from the burst's start to each packet at the desk."""
    store = TranscriptStore.open(url, None, MasterKeys.parse(master), KEY)
    bot = Bot(FakeEngine(), Pseudonymizer(KEY), AssistantSettings(), ConversationMemory(1800), store, handoff=HandoffSettings())
    at_desk: list[float] = []

    def post(message: Outgoing) -> None:
        if message.kind is Kind.HANDOFF_TICKET:
            at_desk.append(time.time())

    router = Router(ConsoleDesk(post))
    mine = [n for n in range(fans) if n % workers == index]

    async def to_fan(message: Outgoing) -> None:
        pass  # the fan's own replies are not what is measured

    async def human(user: str) -> None:
        await router.deliver(await bot.handle(Incoming("slack", user, "D", "/human")), to_fan)

    await human(f"warmup{index}")  # connections, keys and caches warm, as in a running worker
    await bot.handle(Incoming("slack", f"warmup{index}", "D", "/human cancel"))
    latencies: list[float] = []
    for number, start in enumerate(starts):
        await asyncio.sleep(max(0.0, start - time.time()))
        at_desk.clear()
        await asyncio.gather(*(human(f"r{number}fan{n}") for n in mine))
        latencies += [at - start for at in at_desk]
    await bot.drain()
    await router.aclose()
    await store.aclose()
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fans", type=int, default=50)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5, help="bursts, each of --fans new fans")
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--starts", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker is not None:
        starts = [float(s) for s in args.starts.split(",")]
        latencies = asyncio.run(worker(args.url, os.environ["BENCH_MASTER"], args.worker, args.workers, args.fans, args.rounds, starts))
        print(json.dumps(latencies))
        return
    server = os.environ.get("BOT_BENCH_POSTGRES_URL") or os.environ.get("BOT_TEST_POSTGRES_URL")
    if not server:
        print("set BOT_BENCH_POSTGRES_URL (a PostgreSQL server URL), or run under tests/with_postgres.sh")
        return
    master = MasterKeys.generate()
    with scratch_database(server) as url:
        TranscriptStore.open(url, None, MasterKeys.parse(master), KEY).engine.dispose()  # the schema, once
        begin = time.time() + 4.0  # time for the workers to start and warm up
        starts = ",".join(f"{begin + 1.0 * n:.6f}" for n in range(args.rounds))
        environment = dict(os.environ, BENCH_MASTER=master)
        children = [
            subprocess.Popen(
                [sys.executable, __file__, "--worker", str(i), "--workers", str(args.workers), "--fans", str(args.fans),
                 "--rounds", str(args.rounds), "--url", url, "--starts", starts],
                stdout=subprocess.PIPE, env=environment, text=True,
            )
            for i in range(args.workers)
        ]
        latencies = [value * 1000 for child in children for value in json.loads(child.communicate()[0].strip().splitlines()[-1])]
    latencies.sort()
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    print(
        f"{args.fans} /human per burst across {args.workers} workers, {args.rounds} bursts ({len(latencies)} tickets), "
        f"burst start to packet at the desk: p50 {statistics.median(latencies):.1f} ms, p99 {p99:.1f} ms, max {latencies[-1]:.1f} ms "
        "(target p99 <= 50 ms)"
    )


if __name__ == "__main__":
    main()
