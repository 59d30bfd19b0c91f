"""Erasure in one process to refusal of writes in another (issue 16), on PostgreSQL.

A child process (the eraser, like a second worker or `bot forget`) erases fans whose data key
the main process (the worker) has cached. For each fan the worker records, against the moment
the eraser started `store.erase` (CLOCK_MONOTONIC, shared by processes on one machine):
  refusal   - the notice reached the worker: writes queued before it for that fan are dropped
  dropped   - the worker's store thread dropped the fan's cached key and recent turns
The eraser's own `erase` duration is printed beside them (the notice goes out at its key
deletion, before it returns). Target: refusal p99 at most 100 ms. Figures only: nothing asserts.

    BOT_BENCH_POSTGRES_URL=postgresql://postgres@127.0.0.1:PORT/postgres .venv/bin/python bench/erasure_workers.py [--fans 200]

A throwaway database is created on that server and dropped.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


from bench.scratch_database import scratch_database  # noqa: E402
from bot.privacy.crypto import MasterKeys  # noqa: E402
from bot.privacy.notify import listen_for_changes  # noqa: E402
from bot.privacy.store import TranscriptStore, Turn  # noqa: E402

PSEUDONYM_KEY = b"erasure-workers-bench-key-0123456789ab"
POLL_SECONDS = 0.0002


def fan(i: int) -> str:
    return f"{i:064x}"


async def eraser(url: str, master: str) -> None:
    """Child: erases each fan named on stdin; prints when it started and how long it took."""
    store = TranscriptStore.open(url, None, MasterKeys.parse(master), PSEUDONYM_KEY)
    loop = asyncio.get_running_loop()
    try:
        while line := (await loop.run_in_executor(None, sys.stdin.readline)).strip():
            started = time.monotonic()
            await store.erase(line)
            print(f"{started} {time.monotonic() - started}", flush=True)
    finally:
        await store.aclose()


async def worker(url: str, master: str, fans: int) -> None:
    store = TranscriptStore.open(url, None, MasterKeys.parse(master), PSEUDONYM_KEY)
    store.keep_recent(20, 1800)
    listener = listen_for_changes(store)
    assert listener is not None and listener.listening.wait(10)
    child = subprocess.Popen(
        [sys.executable, __file__, "--eraser", url], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        env={**os.environ, "BOT_MASTER_KEYS": master},  # a throwaway key, still never on a command line
    )
    assert child.stdin is not None and child.stdout is not None
    refusal, dropped, erase = [], [], []
    try:
        for i in range(fans):
            await store.append(Turn(fan(i), "c", "fan", "message", datetime.utcnow(), "hello"))
            assert store.holds_key(fan(i))
            seen = store.changes_seen
            child.stdin.write(fan(i) + "\n")
            child.stdin.flush()
            while store.changes_seen == seen:
                await asyncio.sleep(POLL_SECONDS)
            refused = time.monotonic()
            while store.holds_key(fan(i)):
                await asyncio.sleep(POLL_SECONDS)
            gone = time.monotonic()
            started, took = map(float, (await asyncio.to_thread(child.stdout.readline)).split())
            refusal.append((refused - started) * 1000)
            dropped.append((gone - started) * 1000)
            erase.append(took * 1000)
    finally:
        child.stdin.close()
        child.wait(30)
        await store.aclose()
    for name, values in (("refusal of writes", refusal), ("caches dropped", dropped), ("eraser's erase()", erase)):
        ordered = sorted(values)
        p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
        print(f"{name:<20} p50 {statistics.median(ordered):6.1f} ms  p99 {p99:6.1f} ms  max {ordered[-1]:6.1f} ms  (n={len(ordered)})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fans", type=int, default=200)
    parser.add_argument("--eraser", metavar="URL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.eraser:
        asyncio.run(eraser(args.eraser, os.environ["BOT_MASTER_KEYS"]))
        return
    server = os.environ.get("BOT_BENCH_POSTGRES_URL")
    if not server:
        print("(skipped: set BOT_BENCH_POSTGRES_URL; on SQLite one process serves, nothing to invalidate)")
        return
    with scratch_database(server) as url:
        print(f"erasure in one process to refusal of writes in another, PostgreSQL, {args.fans} fans, one at a time")
        asyncio.run(worker(url, MasterKeys.generate(), args.fans))


if __name__ == "__main__":
    main()
