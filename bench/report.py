"""`bot report` over a generated month, and the per-message cost of recording events.

1. report: a store holding 100,000 turns (20,000 conversations of five turns: the disclosure
   and two exchanges) and 2,000 tickets over 30 days, with the events the running bot would
   have recorded for them (60,000 replies, the tickets' steps, exports, erasures, purges),
   3,000 ratings and an audit chain of the tickets' moves. Then `python -m bot report --since 30
   --html --json` as its own process, several times: wall time (interpreter start and imports
   included) and peak RSS, against a bare `python -c pass` (the interpreter alone).
   Targets (issue 17): <= 5 s and <= 300 MB beyond the interpreter.
2. events: `Bot.handle` on the fake engine (so the pipeline's own work is what is timed) and a
   real SQLite store, with event recording on and off, alternating in blocks of 50 messages
   (drained between blocks) in the same run. Prints p50/p99 of each and the added p50 (target <= 0.5 ms).

    .venv/bin/python bench/report.py [--store-url URL] [--runs 3] [--messages 4000]

Figures only; nothing here asserts on time.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import insert  # noqa: E402

from bot.config import AssistantSettings  # noqa: E402
from bot.conversation import ConversationMemory  # noqa: E402
from bot.core import Bot  # noqa: E402
from bot.messages import Incoming  # noqa: E402
from bot.privacy import events as ev  # noqa: E402
from bot.privacy.crypto import MasterKeys  # noqa: E402
from bot.privacy.pseudonym import Pseudonymizer  # noqa: E402
from bot.privacy.schema import events, ratings, tickets, turns  # noqa: E402
from bot.privacy.store import TranscriptStore  # noqa: E402
from bot.testing.fake_engine import FakeEngine  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
KEY = "bench-report-pseudonym-key-0123456789abcdef"
CONVERSATIONS, TICKETS, RATINGS = 20_000, 2_000, 3_000
INTENTS = ["greet", "faq_season", "faq_tickets", "faq_billing", "faq_login", "faq_merch", "goodbye", "faq_report_harassment"]
BATCH = 5_000


def _hex(rng: random.Random) -> str:
    return f"{rng.getrandbits(256):064x}"


def generate(url: str, masters: str) -> int:
    """Fills the store; returns the number of turns."""
    rng = random.Random(17)
    store = TranscriptStore.open(url, None, MasterKeys.parse(masters), KEY.encode())
    now = datetime.now(UTC).replace(tzinfo=None)
    start = now - timedelta(days=30)
    fans = [_hex(rng) for _ in range(5_000)]
    turn_rows: list[dict[str, object]] = []
    event_rows: list[dict[str, object]] = []
    for n in range(CONVERSATIONS):
        fan = fans[n % len(fans)]
        conversation = _hex(rng)
        at = start + timedelta(seconds=rng.uniform(0, 30 * 86400 - 600))
        session = ev.conversation_id(conversation, ev.epoch(at))
        turn_rows.append(dict(fan=fan, conversation=conversation, role="assistant", kind="disclosure", at=at, body=os.urandom(180)))
        event_rows.append(dict(at=ev.epoch(at), kind=ev.REPLY, platform="slack", fan=fan, conversation=session, reason="disclosure"))
        for exchange in range(2):
            when = at + timedelta(seconds=30 * (exchange + 1))
            intent, confidence = rng.choice(INTENTS), rng.uniform(0.3, 1.0)
            kind = "answer" if confidence >= 0.5 else "fallback"
            turn_rows.append(dict(fan=fan, conversation=conversation, role="fan", kind="message", at=when, intent=intent,
                                  confidence=confidence, body=os.urandom(160)))
            turn_rows.append(dict(fan=fan, conversation=conversation, role="assistant", kind=kind, at=when, intent=intent,
                                  confidence=confidence, body=os.urandom(220)))
            event_rows.append(dict(at=ev.epoch(when), kind=ev.REPLY, platform="slack", fan=fan, conversation=session,
                                   intent=intent, confidence=confidence, reason=kind))
    ticket_rows = []
    for n in range(TICKETS):
        opened = start + timedelta(seconds=rng.uniform(0, 30 * 86400 - 7200))
        wait, first, resolve = rng.uniform(20, 900), rng.uniform(30, 300), rng.uniform(300, 3600)
        status = "resolved" if n % 20 else "cancelled"
        ticket_rows.append(dict(fan=fans[n], conversation=_hex(rng), platform="discord", route=os.urandom(120), status=status,
                                reason=rng.choice(["asked", "complaint", "repeated_fallbacks", "harassment"]), created_at=opened,
                                claimed_at=opened + timedelta(seconds=wait), closed_at=opened + timedelta(seconds=wait + resolve),
                                timeout_notified=False, silence_notified=False, release_notice=False))
        base = dict(platform="discord", reason=ticket_rows[-1]["reason"])
        event_rows.append(dict(at=ev.epoch(opened), kind=ev.HANDOFF_OPENED, **base))
        if status == "resolved":
            event_rows.append(dict(at=ev.epoch(opened) + wait, kind=ev.HANDOFF_CLAIMED, seconds=wait, **base))
            event_rows.append(dict(at=ev.epoch(opened) + wait + first, kind=ev.HANDOFF_FIRST_REPLY, seconds=wait + first, **base))
            event_rows.append(dict(at=ev.epoch(opened) + wait + resolve, kind=ev.HANDOFF_RESOLVED, seconds=wait + resolve, **base))
        else:
            event_rows.append(dict(at=ev.epoch(opened) + wait, kind=ev.HANDOFF_CANCELLED, seconds=wait, platform="discord", reason="open"))
    for day in range(30):
        at = ev.epoch(start) + day * 86400
        event_rows += [dict(at=at + 1, kind=ev.EXPORT, reason="fan"), dict(at=at + 2, kind=ev.ERASURE, reason="fan", seconds=0.2),
                       dict(at=at + 3, kind=ev.PRIVACY_OFF)] + [dict(at=at + 3600 * h, kind=ev.PURGE, count=0) for h in range(24)]
    rating_rows = [
        dict(at=ev.epoch(start) + rng.uniform(0, 30 * 86400), fan=fans[n % len(fans)], conversation=_hex(rng), platform="slack",
             answer=f"a{n}", intent=rng.choice(INTENTS), confidence=rng.uniform(0.5, 1), rating=rng.choice(["good", "good", "bad"]))
        for n in range(RATINGS)
    ]
    with store.engine.begin() as connection:
        for table, rows in ((turns, turn_rows), (events, event_rows), (tickets, ticket_rows), (ratings, rating_rows)):
            names = [c.name for c in table.columns if c.name != "id"]
            full = [{name: row.get(name) for name in names} for row in rows]  # one shape for executemany
            for offset in range(0, len(full), BATCH):
                connection.execute(insert(table), full[offset: offset + BATCH])
        for n in range(TICKETS * 3):  # the tickets' moves (claim, reply, resolve) in the audit chain
            store.audit_log.record("ticket_claimed", "moderator", {"ticket": n // 3 + 1}, connection=connection)
    asyncio.run(store.aclose())
    return len(turn_rows)


#: Runs a module as `python -m` would, then prints the process's own peak RSS (VmHWM: per
#: address space, so neither this parent's size at fork nor an earlier image counts).
PEAK = (
    "import atexit, runpy, sys\n"
    "atexit.register(lambda: print('VmHWM', [l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')][0], file=sys.stderr))\n"
    "if len(sys.argv) > 1: sys.argv = sys.argv[1:]; runpy.run_module(sys.argv[0], run_name='__main__', alter_sys=True)\n"
)


def timed_process(args: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of one child process (`args`: a module and its arguments)."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", PEAK, *args], env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{args}: exit {done.returncode}: {done.stderr[-500:]}")
    peak_kb = int(done.stderr.rsplit("VmHWM", 1)[1].split()[0])
    return wall, peak_kb / 1024


def bench_report(url: str, runs: int, folder: Path) -> None:
    masters = MasterKeys.generate()
    started = time.perf_counter()
    count = generate(url, masters)
    print(f"generated {count} turns, {TICKETS} tickets, their events, {RATINGS} ratings in {time.perf_counter() - started:.1f} s")
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("BOT_")}, "BOT_STORE_URL": url, "BOT_PSEUDONYM_KEY": KEY,
           "BOT_MASTER_KEYS": masters}
    bare = [timed_process([], env) for _ in range(runs)]
    command = ["bot", "report", "--since", "30", "--html", str(folder / "r.html"), "--json", str(folder / "r.json")]
    results = [timed_process(command, env) for _ in range(runs)]
    text_only = [timed_process(command[:4], env) for _ in range(runs)]
    bare_rss = statistics.median(r for _, r in bare)
    for name, figures in (("bot report --html --json", results), ("bot report (text only)", text_only)):
        walls, peaks = [w for w, _ in figures], [r for _, r in figures]
        print(f"{name}: wall median {statistics.median(walls):.2f} s (max {max(walls):.2f}); "
              f"peak RSS median {statistics.median(peaks):.0f} MB, {statistics.median(peaks) - bare_rss:.0f} MB beyond the interpreter "
              f"({bare_rss:.0f} MB); targets <= 5 s, <= 300 MB")
    size = (folder / "r.html").stat().st_size
    print(f"HTML page {size / 1024:.0f} KiB, JSON {(folder / 'r.json').stat().st_size / 1024:.0f} KiB")


async def bench_events(folder: Path, messages: int) -> None:
    store = TranscriptStore.open(f"sqlite:///{folder}/events.db", None, MasterKeys.parse(MasterKeys.generate()), KEY.encode())
    bot = Bot(FakeEngine(), Pseudonymizer(KEY.encode()), AssistantSettings(), ConversationMemory(idle_seconds=1800), store)
    texts = ["hello", "how do I get a refund", "my password does not work", "what is the weather", "bye"]
    timings: dict[bool, list[float]] = {True: [], False: []}
    drains: dict[bool, list[float]] = {True: [], False: []}  # the background writes of each block, waited for
    rng = random.Random(5)
    for n in range(messages + 200):
        recording = (n // 50) % 2 == 0  # blocks of 50: each side's background writes stay in its own block
        bot.events.enabled = recording
        incoming = Incoming("bench", f"fan-{rng.randrange(300)}", "direct", rng.choice(texts))
        started = time.perf_counter()
        await bot.handle(incoming)
        if n >= 200:  # warm-up: caches, data keys, the first conversation rows
            timings[recording].append((time.perf_counter() - started) * 1000)
        if n % 50 == 49:
            started = time.perf_counter()
            await bot.drain()  # the writes of both sides reach the disk between blocks alike
            if n >= 200:
                drains[recording].append((time.perf_counter() - started) * 1000 / 50)
    await bot.drain()
    await store.aclose()
    on, off = sorted(timings[True]), sorted(timings[False])

    def q(values: list[float], p: float) -> float:
        return values[min(len(values) - 1, int(p * len(values)))]

    print(f"Bot.handle (fake engine, SQLite), {len(on)} messages each, alternating blocks of 50: "
          f"recording on p50 {q(on, 0.5):.3f} ms p99 {q(on, 0.99):.3f} ms; off p50 {q(off, 0.5):.3f} ms p99 {q(off, 0.99):.3f} ms; "
          f"added p50 {q(on, 0.5) - q(off, 0.5):+.3f} ms (target <= 0.5 ms)")
    print(f"background writes per message (drain after each block / 50): on {statistics.median(drains[True]):.3f} ms, "
          f"off {statistics.median(drains[False]):.3f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store-url", help="generate the store here (an empty database) instead of a SQLite file")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--messages", type=int, default=4000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-report-") as folder:
        bench_report(args.store_url or f"sqlite:///{folder}/transcripts.db", args.runs, Path(folder))
        asyncio.run(bench_events(Path(folder), args.messages))
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
