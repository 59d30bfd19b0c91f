"""What the transcript store costs: erasure time, append throughput, added latency.

1. Erasure: `store.erase(fan)` (the key shredded, the receipt returned; the remaining
   rows, unreadable already, are deleted in queued batches: "every row gone" times that)
   for a fan with 10,000 turns in a store of N turns in all
   (N = 10k, 100k, 1M by default; one SQLite file grown in place; filler rows are
   bulk-inserted). Target: at most 100 ms, and flat as the store grows (1M median / 10k
   median near 1). The fan's turns are re-created before each run, so they sit together
   at the end of the table; a fan whose 10,000 turns are spread through the whole table
   (as a real fan's are, written over months between everyone else's) is erased once at
   the largest size and reported apart.
2. Append throughput with redaction (`minimized`) and encryption in the timed loop,
   one awaited `store.append` per turn, and per fan turn + reply pair, for fans whose
   data keys exist (the first append of a new fan is reported apart). Target: at least
   2,000 turns/s.
3. Added latency per message: `minimized` of the fan message and the reply plus one
   `store.append(fan_turn, assistant_turn)`. Target: p99 at most 2 ms.

With BOT_BENCH_POSTGRES_URL set (a server URL; a throwaway database bench_<random> is
created on it and dropped at the end), 2 and 3 and the erasure at 10k and 100k are
repeated on PostgreSQL. Figures and ratios only: nothing asserts, the exit status is 0.

    .venv/bin/python bench/store_costs.py [--sizes 10000,100000,1000000] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import random
import secrets
import shlex
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import create_engine, event, insert, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from bot.privacy import crypto  # noqa: E402
from bot.privacy.crypto import MasterKeys  # noqa: E402
from bot.privacy.schema import data_keys, turns  # noqa: E402
from bot.privacy.store import TranscriptStore, Turn  # noqa: E402
from bot.transcript import minimized  # noqa: E402

ERASE_TARGET_MS = 100.0
THROUGHPUT_TARGET = 2000.0  # turns/s
P99_TARGET_MS = 2.0
FAN_TURNS = 10_000
FILLER_FANS = 1000
CHUNK = 20_000
REPEATS = 3
START = datetime(2024, 1, 1)


def log(line: str = "") -> None:
    print(line, flush=True)


def pseudonym(label: str) -> str:
    return hashlib.sha256(label.encode()).hexdigest()


# ------------------------------------------------------------------ messages

_FAN_TEMPLATES = [
    "hey, i was charged twice this month for the premium plan, can someone check my account? my email is {email}",
    "the stream keeps buffering on my tv every few minutes since yesterday's update, episode 4 of neon harbor is unwatchable",
    "when does the next episode of starfall chronicles drop? i heard it was delayed to friday but nobody confirmed it",
    "can't log in, it says my password is wrong even after the reset. you can call me at {phone} if that's easier",
    "where is my hoodie order {order}? the tracking page hasn't changed in 9 days and i paid for express shipping",
    "someone keeps harassing me in dms after the watch party, their messages are at {url} please do something",
    "i tried to pay with my card {card} and it got declined twice but the bank says everything is fine on their side",
    "is season 3 of neon harbor out yet in europe? the app still shows 'coming soon' for me and my friends in berlin",
    "hi! are there still tickets for the convention panel on saturday? i want to bring two friends along if possible",
    "my refund should go to {iban}, i cancelled within the 14 days like the help page at https://help.streamverse.example/refunds says",
    "no sound on episode 7 on the android app, tried clearing the cache and reinstalling, still nothing. any ideas?",
    "what are the spoiler rules in the fan server? someone posted the season finale ending in general chat today",
    "my router ip is {ip} if that helps, the player shows error 2103 every time i try to start a live event",
    "can you reset my 2fa? i lost my phone and the backup codes were on it, my account email is {email}",
]
_REPLIES = [
    "For buffering, stuttering, no sound or low quality, try restarting the app, checking your connection and lowering the quality in settings.",
    "Billing questions: you can see every charge under Account > Billing. A duplicate charge is usually a pending authorisation that drops off in a few days.",
    "New episodes of Starfall Chronicles arrive every Friday at 18:00 UTC. The release calendar in the app always has the latest dates.",
    "To reset your password, use 'Forgot password' on the sign-in page. If 2FA blocks you, reply /human and a moderator will verify you.",
    "Orders ship within 3 working days; the tracking link in your confirmation e-mail updates once the carrier scans the parcel.",
    "I'm sorry that is happening. Please use the report button on the message, or reply /human and a moderator will take it from here.",
]


def fan_message(rng: random.Random) -> str:
    template = rng.choice(_FAN_TEMPLATES)
    return template.format(
        email=f"{rng.choice(['ann', 'jo.smith', 'fan_42', 'maria'])}{rng.randint(1, 999)}@example.com",
        phone=f"+44 7700 9{rng.randint(10000, 99999)}",
        order=f"#{rng.randint(100000, 999999)}",
        url=f"https://streamverse.example/dm?thread={rng.randint(10**9, 10**10)}",
        card="4111 1111 1111 1111",
        iban="DE89 3704 0044 0532 0130 00",
        ip=f"192.168.{rng.randint(0, 255)}.{rng.randint(1, 254)}",
    )


# ------------------------------------------------------------------ backends


@dataclass
class Backend:
    label: str
    url: str
    cleanup: Callable[[], None]


def sqlite_backend(directory: str) -> Backend:
    path = Path(directory) / "transcripts.db"
    return Backend("SQLite", f"sqlite:///{path}", lambda: None)


def postgres_backend(server_url: str) -> Backend:
    name = f"bench_{secrets.token_hex(4)}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT", future=True)
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(server_url).set(database=name).render_as_string(hide_password=False)

    def cleanup() -> None:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
        log(f"  dropped database {name}")

    log(f"  created database {name}")
    return Backend("PostgreSQL", url, cleanup)


# ------------------------------------------------------------------ filling


class Filler:
    """Grows the store with filler fans' turns, straight through SQLAlchemy Core."""

    def __init__(self, store: TranscriptStore, master: MasterKeys, largest: int) -> None:
        self.store = store
        # One filler row in `scatter_every` belongs to the "scattered" fan, so that it has
        # about 10,000 turns spread through the table at the largest size.
        self.scatter_every = max(2, (largest - FAN_TURNS) // FAN_TURNS)
        self.rows = 0
        rng = random.Random(7)
        self.fans = [pseudonym(f"filler-{i}") for i in range(FILLER_FANS)]
        self.scattered = pseudonym("scattered")
        self.bodies = {}
        key_rows = []
        for fan in self.fans + [self.scattered]:
            key = crypto.new_data_key()
            self.bodies[fan] = crypto.encrypt(key, minimized(fan_message(rng)))
            key_rows.append({"fan": fan, "wrapped": master.wrap(key), "created_at": START})
        with store.engine.begin() as connection:
            connection.execute(insert(data_keys), key_rows)

    def grow(self, count: int) -> None:
        done = 0
        while done < count:
            n = min(CHUNK, count - done)
            rows = []
            for i in range(self.rows, self.rows + n):
                fan = self.scattered if i % self.scatter_every == self.scatter_every - 1 else self.fans[i % FILLER_FANS]
                rows.append(
                    {
                        "fan": fan,
                        "conversation": fan,
                        "role": "fan" if i % 2 == 0 else "assistant",
                        "kind": "message" if i % 2 == 0 else "answer",
                        "at": START + timedelta(seconds=i),
                        "intent": "billing" if i % 2 else None,
                        "confidence": 0.9 if i % 2 else None,
                        "body": self.bodies[fan],
                    }
                )
            with self.store.engine.begin() as connection:
                connection.execute(insert(turns), rows)
            self.rows += n
            done += n


async def recreate_target(store: TranscriptStore, master: MasterKeys, fan: str, rng: random.Random) -> None:
    """A data key for `fan` in data_keys, one turn through the store, 9,999 more in bulk."""
    key = crypto.new_data_key()
    with store.engine.begin() as connection:
        connection.execute(insert(data_keys).values(fan=fan, wrapped=master.wrap(key), created_at=datetime.utcnow()))
    now = datetime.utcnow()
    await store.append(Turn(fan, fan, "fan", "message", now, minimized(fan_message(rng))))  # reads and unwraps the key
    texts = [minimized(fan_message(rng)) for _ in range(50)]
    rows = [
        {
            "fan": fan,
            "conversation": fan,
            "role": "fan",
            "kind": "message",
            "at": now,
            "intent": None,
            "confidence": None,
            "body": crypto.encrypt(key, texts[i % len(texts)]),
        }
        for i in range(FAN_TURNS - 1)
    ]
    with store.engine.begin() as connection:
        connection.execute(insert(turns), rows)


def delete_plan(store: TranscriptStore, fan: str) -> str:
    with store.engine.connect() as connection:
        if store.engine.dialect.name == "sqlite":
            rows = connection.execute(text("EXPLAIN QUERY PLAN DELETE FROM turns WHERE fan = :fan"), {"fan": fan}).all()
            return "; ".join(str(row[-1]) for row in rows)
        rows = connection.execute(text("EXPLAIN DELETE FROM turns WHERE fan = :fan"), {"fan": fan}).all()
        return " / ".join(str(row[0]).strip() for row in rows)


def analyze(store: TranscriptStore) -> None:
    if store.engine.dialect.name == "postgresql":  # what autovacuum would have done by now
        with store.engine.begin() as connection:
            connection.execute(text("ANALYZE turns"))
            connection.execute(text("ANALYZE data_keys"))


# ------------------------------------------------------------------ measurements


def ratio_line(value: float, target: float, unit: str, higher_is_better: bool = False) -> str:
    sign = ">=" if higher_is_better else "<="
    return f"(target {sign} {target:,g} {unit}, ratio {value / target:.2f})"


async def measure_erasure(store: TranscriptStore, master: MasterKeys, sizes: list[int], label: str) -> None:
    filler = Filler(store, master, sizes[-1])
    target = pseudonym("target-fan")
    rng = random.Random(11)
    medians: dict[int, float] = {}
    for size in sizes:
        grow = max(0, size - FAN_TURNS) - filler.rows
        if grow > 0:
            started = time.perf_counter()
            filler.grow(grow)
            analyze(store)
            log(f"  [{label}] filled to {filler.rows + FAN_TURNS:,} turns ({grow:,} filler rows in {time.perf_counter() - started:.1f} s)")
        timings = []
        for repeat in range(REPEATS):
            await recreate_target(store, master, target, rng)
            total = await store.count_turns()
            mine = await store.count_turns(target)
            if mine != FAN_TURNS:
                log(f"  [{label}] WARNING: target fan has {mine} turns, not {FAN_TURNS}")
            if repeat == 0:
                log(f"  [{label}] plan: {delete_plan(store, target)}")
            started = time.perf_counter()
            receipt = await store.erase(target)
            elapsed = (time.perf_counter() - started) * 1000
            await store.settle()
            gone = (time.perf_counter() - started) * 1000
            timings.append(elapsed)
            if receipt.turns != FAN_TURNS or receipt.data_keys != 1:
                log(f"  [{label}] WARNING: erase removed {receipt.turns} turns and {receipt.data_keys} data keys")
            log(f"  [{label}] store of {total:,} turns, erase run {repeat + 1}: {elapsed:.1f} ms (every row gone after {gone:.1f} ms)")
        median = statistics.median(timings)
        medians[size] = median
        log(
            f"{label}: erase 10k turns in a {total:,}-turn store: median {median:.1f} ms, max {max(timings):.1f} ms "
            + ratio_line(median, ERASE_TARGET_MS, "ms")
        )
    if len(sizes) > 1:
        first, last = sizes[0], sizes[-1]
        log(
            f"{label}: erase flatness: {last:,}-turn median / {first:,}-turn median = "
            f"{medians[last] / medians[first]:.2f} (target: near 1)"
        )
    # A fan whose turns are spread through the whole table (as a real fan's are), one run.
    scattered = await store.count_turns(filler.scattered)
    if scattered:
        total = await store.count_turns()
        started = time.perf_counter()
        receipt = await store.erase(filler.scattered)
        elapsed = (time.perf_counter() - started) * 1000
        await store.settle()
        gone = (time.perf_counter() - started) * 1000
        log(
            f"{label}: erase {receipt.turns:,} turns spread through a {total:,}-turn store (1 run): {elapsed:.1f} ms "
            + ratio_line(elapsed, ERASE_TARGET_MS, "ms")
            + f"; every row gone after {gone:.1f} ms"
        )


def _turn_pair(rng: random.Random, fans: list[str]) -> tuple[str, str, str]:
    fan = rng.choice(fans)
    return fan, fan_message(rng), rng.choice(_REPLIES)


class ConnectionCounter:
    """Counts DBAPI connections the store's engine opens (1.4's SQLite file engines do not pool)."""

    def __init__(self, store: TranscriptStore) -> None:
        self.count = 0
        self._engine = store.engine
        event.listen(self._engine, "connect", self._seen)

    def _seen(self, *_args: object) -> None:
        self.count += 1

    def close(self) -> None:
        event.remove(self._engine, "connect", self._seen)


async def warm_up(store: TranscriptStore, fans: list[str], rng: random.Random) -> list[float]:
    """One turn for each new fan (this creates its data key); returns each call's ms."""
    timings = []
    for fan in fans:
        started = time.perf_counter()
        await store.append(Turn(fan, fan, "fan", "message", datetime.utcnow(), minimized(fan_message(rng))))
        timings.append((time.perf_counter() - started) * 1000)
    return timings


async def measure_append(store: TranscriptStore, count: int, label: str) -> None:
    rng = random.Random(23)
    fans = [pseudonym(f"append-{label}-{i}") for i in range(500)]
    work = [_turn_pair(rng, fans) for _ in range(count)]
    first = sorted(await warm_up(store, fans, rng))
    log(
        f"{label}: first append of a new fan (creates its data key): p50 {statistics.median(first):.2f} ms, "
        f"p99 {first[int(0.99 * (len(first) - 1))]:.2f} ms over {len(first)} fans"
    )

    connections = ConnectionCounter(store)
    started = time.perf_counter()
    for fan, message, _ in work:
        await store.append(Turn(fan, fan, "fan", "message", datetime.utcnow(), minimized(message)))
    elapsed = time.perf_counter() - started
    connections.close()
    rate = count / elapsed
    log(
        f"{label}: append {count:,} turns, one call each: {rate:,.0f} turns/s ({elapsed * 1e6 / count:,.0f} us/turn) "
        + ratio_line(rate, THROUGHPUT_TARGET, "turns/s", True)
    )
    log(f"{label}:   new database connections opened during those {count:,} calls: {connections.count:,}")

    pairs = work[: count // 2]
    started = time.perf_counter()
    for fan, message, reply in pairs:
        now = datetime.utcnow()
        await store.append(
            Turn(fan, fan, "fan", "message", now, minimized(message), "billing", 0.93),
            Turn(fan, fan, "assistant", "answer", now, minimized(reply), "billing", 0.93),
        )
    elapsed = time.perf_counter() - started
    rate = 2 * len(pairs) / elapsed
    log(
        f"{label}: append {2 * len(pairs):,} turns, 2 per call: {rate:,.0f} turns/s "
        + ratio_line(rate, THROUGHPUT_TARGET, "turns/s", True)
    )

    # What the bot does: each exchange queues its 2 turns without waiting (store.submit),
    # so writes queued while the store thread is busy share one commit.
    started = time.perf_counter()
    queued = []
    for fan, message, reply in pairs:
        now = datetime.utcnow()
        queued.append(
            store.submit(
                Turn(fan, fan, "fan", "message", now, minimized(message), "billing", 0.93),
                Turn(fan, fan, "assistant", "answer", now, minimized(reply), "billing", 0.93),
            )
        )
        await asyncio.sleep(0)  # let the loop run between exchanges, as between messages
    await asyncio.gather(*queued)
    elapsed = time.perf_counter() - started
    rate = 2 * len(pairs) / elapsed
    log(
        f"{label}: append {2 * len(pairs):,} turns as the bot does (queued, group commit): {rate:,.0f} turns/s "
        + ratio_line(rate, THROUGHPUT_TARGET, "turns/s", True)
    )


async def measure_latency(store: TranscriptStore, count: int, label: str) -> None:
    rng = random.Random(31)
    fans = [pseudonym(f"latency-{label}-{i}") for i in range(200)]
    work = [_turn_pair(rng, fans) for _ in range(count)]
    await warm_up(store, fans, rng)
    samples = []
    redaction = []
    for fan, message, reply in work:
        started = time.perf_counter()
        fan_text = minimized(message)
        reply_text = minimized(reply)
        redacted = time.perf_counter()
        now = datetime.utcnow()
        await store.append(
            Turn(fan, fan, "fan", "message", now, fan_text, "billing", 0.93),
            Turn(fan, fan, "assistant", "answer", now, reply_text, "billing", 0.93),
        )
        done = time.perf_counter()
        samples.append((done - started) * 1000)
        redaction.append((redacted - started) * 1000)
    samples.sort()
    redaction.sort()
    p50 = statistics.median(samples)
    p99 = samples[int(0.99 * (len(samples) - 1))]
    log(
        f"{label}: added latency per message until committed, over {count:,} messages: p50 {p50:.2f} ms, p99 {p99:.2f} ms, "
        f"max {samples[-1]:.2f} ms " + ratio_line(p99, P99_TARGET_MS, "ms")
    )
    log(
        f"{label}:   of which minimized() of both texts: p50 {statistics.median(redaction) * 1000:.0f} us, "
        f"p99 {redaction[int(0.99 * (len(redaction) - 1))] * 1000:.0f} us"
    )

    # What a fan's reply waits for in the bot: redaction, then queueing the write
    # (store.submit); the commit happens on the store thread behind the reply.
    reply_path = []
    queued = []
    for fan, message, reply in work:
        started = time.perf_counter()
        now = datetime.utcnow()
        queued.append(
            store.submit(
                Turn(fan, fan, "fan", "message", now, minimized(message), "billing", 0.93),
                Turn(fan, fan, "assistant", "answer", now, minimized(reply), "billing", 0.93),
            )
        )
        reply_path.append((time.perf_counter() - started) * 1000)
        await asyncio.sleep(0)
    await asyncio.gather(*queued)
    reply_path.sort()
    p99 = reply_path[int(0.99 * (len(reply_path) - 1))]
    log(
        f"{label}: added latency on the reply path (redact + encrypt queued, as the bot does): "
        f"p50 {statistics.median(reply_path):.3f} ms, p99 {p99:.3f} ms " + ratio_line(p99, P99_TARGET_MS, "ms")
    )


async def run_backend(backend: Backend, sizes: list[int], appends: int, messages: int) -> None:
    master_text = MasterKeys.generate()
    master = MasterKeys.parse(master_text)
    store = TranscriptStore.open(backend.url, None, master)
    try:
        log(f"-- {backend.label}: erasure")
        await measure_erasure(store, master, sizes, backend.label)
        total = await store.count_turns()
        where = f"{backend.label}, {total:,}-turn store"
        log(f"-- {backend.label}: append throughput and latency (in the same store, now {total:,} turns)")
        await measure_append(store, appends, where)
        await measure_latency(store, messages, where)
    finally:
        await store.aclose()


def machine_reference() -> float:
    started = time.perf_counter()
    total = 0
    for i in range(2_000_000):
        total += i * i % 7
    return (time.perf_counter() - started) * 1000


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default=None, help="comma-separated store sizes in turns (default 10000,100000,1000000)")
    parser.add_argument("--quick", action="store_true", help="sizes 10k,100k and fewer turns, for a fast run")
    args = parser.parse_args()
    sizes = [int(s.replace("_", "")) for s in args.sizes.split(",")] if args.sizes else (
        [10_000, 100_000] if args.quick else [10_000, 100_000, 1_000_000]
    )
    sizes = sorted(set(sizes))
    appends, messages = (1000, 500) if args.quick else (5000, 2000)
    postgres = os.environ.get("BOT_BENCH_POSTGRES_URL")

    command = ".venv/bin/python bench/store_costs.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    if postgres:
        command = f"BOT_BENCH_POSTGRES_URL={shlex.quote(postgres)} " + command
    log(f"reproduce: cd {Path(__file__).resolve().parents[1]} && {command.strip()}")
    log(
        f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, machine reference "
        f"(2M-iteration Python loop) {machine_reference():.0f} ms"
    )
    log(f"sizes {', '.join(f'{s:,}' for s in sizes)}; {appends:,} appended turns; {messages:,} latency messages")
    log()

    directory = tempfile.mkdtemp(prefix="store_costs_")
    try:
        await run_backend(sqlite_backend(directory), sizes, appends, messages)
        database = Path(directory) / "transcripts.db"
        if database.exists():
            log(f"  SQLite file size: {database.stat().st_size / 1e6:,.0f} MB")
    finally:
        shutil.rmtree(directory, ignore_errors=True)

    if postgres:
        log()
        pg_sizes = [s for s in sizes if s <= 100_000] or sizes[:1]
        backend = postgres_backend(postgres)
        try:
            await run_backend(backend, pg_sizes, appends, messages)
        finally:
            backend.cleanup()
    else:
        log("\n(PostgreSQL skipped: set BOT_BENCH_POSTGRES_URL, e.g. postgresql://postgres@127.0.0.1:55432/postgres)")


if __name__ == "__main__":
    asyncio.run(main())
