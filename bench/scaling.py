"""Issue 15: model-bound throughput with 2 model servers against 1 (target >= 1.6x on 2 cores).

Two real model servers (`bench/servers.py`, started as `bot` starts them); many fans at once
through `ModelServerEngine` (the bot's client, sticky routing by pseudonym), each sending its
next message as soon as the last is answered. The same load runs with `urls=[a]` and with
`urls=[a, b]`, alternating, `--repeats` times; prints messages/s of each and the ratio.
`--server-env KEY=VALUE` (repeatable) adds a setting to both servers' environment, to see
which thread settings matter (e.g. `TF_NUM_INTRAOP_THREADS=1`, `OMP_NUM_THREADS=1`).
Figures only.

    .venv/bin/python bench/scaling.py [--messages 400] [--concurrency 16] [--repeats 2] [--fans 200] [--server-env K=V ...]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.pipeline_latency import MESSAGES  # noqa: E402
from bench.servers import load_average, rss_mb, start_model_server  # noqa: E402
from bot.engine.remote import ModelServerEngine  # noqa: E402

#: Distinct fans per run; 400 messages make each send two (a first and a second message).
#: Routing is sticky by fan, so the servers' split is this sample's: its noise alone moves the
#: larger share by about 3.5 % (one standard deviation). `--fans 1000` makes nearly every
#: message a fan's first, which costs the model less (docs/benchmarks.md).
FANS = 200


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of one process so far (/proc/PID/stat fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def threads(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    return 0


async def throughput(engine: ModelServerEngine, messages: int, concurrency: int, tag: str, fans: int = FANS) -> tuple[float, Counter[str]]:
    counter = iter(range(messages))
    served: Counter[str] = Counter()

    async def fan_loop(worker: int) -> None:
        for n in counter:
            fan = f"{tag}-fan-{(n * 7 + worker) % fans}"
            served[engine._ring.owner(fan)] += 1  # noqa: SLF001  # which server the fan is routed to
            await engine.respond(fan, MESSAGES[n % len(MESSAGES)])

    start = time.perf_counter()
    await asyncio.gather(*(fan_loop(w) for w in range(concurrency)))
    return messages / (time.perf_counter() - start), served


async def main_async(messages: int, concurrency: int, repeats: int, server_env: dict[str, str], fans: int = FANS) -> None:
    print(f"load average at start: {load_average()}; server env additions: {server_env or 'none'}; {fans} fans")
    token = secrets.token_urlsafe(24)  # one secret for both, as `[engine] urls` needs
    a, b = start_model_server(extra_env=server_env, token=token), start_model_server(extra_env=server_env, token=token)
    print(f"model servers ready after {a.ready_seconds:.1f} s and {b.ready_seconds:.1f} s (started one after the other)")
    one = ModelServerEngine([a.url], token, timeout_seconds=120)
    two = ModelServerEngine([a.url, b.url], token, timeout_seconds=120)
    try:
        for warm in range(20):  # warm both
            await one.respond(f"warm-{warm}", MESSAGES[warm % len(MESSAGES)])
            await two.respond(f"warm-{warm}", MESSAGES[warm % len(MESSAGES)])
        rates: dict[str, list[float]] = {"1 server": [], "2 servers": []}
        pids = {"a": a.process.pid, "b": b.process.pid, "bench (bot side)": os.getpid()}

        async def run(engine: ModelServerEngine, tag: str) -> tuple[float, Counter[str], str]:
            before, began = {k: cpu_seconds(p) for k, p in pids.items()}, time.perf_counter()
            rate, split = await throughput(engine, messages, concurrency, tag, fans)
            wall = time.perf_counter() - began
            spent = {k: cpu_seconds(p) - before[k] for k, p in pids.items()}
            used = ", ".join(f"{k} {seconds / wall:.2f}" for k, seconds in spent.items())
            per_cpu = messages / max(spent["a"] + spent["b"], 1e-9)
            return rate, split, f"cores used: {used}; {per_cpu:.0f} messages per server CPU-second"

        for repeat in range(repeats):
            rate, _, used = await run(one, f"one{repeat}")
            rates["1 server"].append(rate)
            print(f"  1 server: {rate:.1f} msg/s; {used}")
            rate, split, used = await run(two, f"two{repeat}")
            rates["2 servers"].append(rate)
            print(f"  2 servers: {rate:.1f} msg/s; {used}")
            print(f"repeat {repeat + 1}: 1 server {rates['1 server'][-1]:.1f} msg/s, 2 servers {rate:.1f} msg/s "
                  f"(ratio {rate / rates['1 server'][-1]:.2f}; messages per server {sorted(split.values())}); load {load_average()}")
        print(f"server threads: {threads(a.process.pid)} / {threads(b.process.pid)}; RSS {rss_mb(a.process.pid):.0f} / {rss_mb(b.process.pid):.0f} MB")
        m1, m2 = statistics.median(rates["1 server"]), statistics.median(rates["2 servers"])
        print(f"median: 1 server {m1:.1f} msg/s, 2 servers {m2:.1f} msg/s: ratio {m2 / m1:.2f} (target >= 1.6 on 2 cores)")
    finally:
        await one.aclose()
        await two.aclose()
        a.stop()
        b.stop()
    print(f"load average at end: {load_average()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--server-env", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--fans", type=int, default=FANS, help="distinct fans per run (sticky routing splits them)")
    args = parser.parse_args()
    env = dict(item.split("=", 1) for item in args.server_env)
    asyncio.run(main_async(args.messages, args.concurrency, args.repeats, env, args.fans))


if __name__ == "__main__":
    main()
