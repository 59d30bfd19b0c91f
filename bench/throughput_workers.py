"""2 workers against 1 (issue 16): model-bound throughput through Slack in HTTP mode, each
worker a real `bot run` process with its own real model server, on one PostgreSQL.

Both workers and both model servers run throughout; the load alternates between "1 worker"
(every fan's events go to worker A) and "2 workers" (fans spread over A and B, as a load
balancer would), `--repeats` times, in the same run. `--concurrency` messages are in flight at
once, each slot sending its next direct message (from the next of its own fans, so that
conversations stay short) as soon as the assistant's reply to the last reached the stand-in,
with the in-domain questions of `bench/pipeline_latency.py` (every one goes to the model; none
starts a handoff).
Prints messages/s of each and the ratio (target >= 1.6 on this 2-core machine, where the
stand-in, this driver, PostgreSQL, two workers and two model servers share the cores).
Figures only: the exit status is 0.

    BOT_BENCH_POSTGRES_URL=postgresql://... .venv/bin/python bench/throughput_workers.py [--fans 400] [--concurrency 16] [--messages 400] [--repeats 3]

(`tests/with_postgres.sh` sets BOT_TEST_POSTGRES_URL, which is used when the former is not set.)
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import socket
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.pipeline_latency import MESSAGES  # noqa: E402
from bench.scaling import cpu_seconds  # noqa: E402
from bench.scratch_database import scratch_database  # noqa: E402
from bench.servers import MODEL, load_average, start_model_server  # noqa: E402
from bot.privacy.crypto import MasterKeys  # noqa: E402
from bot.testing.privacy_contacts import PRIVACY_CONTACTS  # noqa: E402
from standins.slack import SlackStandIn  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
#: Questions the model answers with one reply and no question back: a handoff offer or a yes/no
#: could start a handoff, and the fan's later messages would go to the desk instead.
QUESTIONS = [m for m in MESSAGES if m not in {
    "someone keeps harassing me in dms", "how do i report a user who doxxed me", "this is so frustrating nothing works",
    "thanks a lot", "ok cool", "nope", "what's the weather in paris", "bye!",
}]
BOT_TOKEN, SECRET, DESK = "xoxb-throughput", "throughput-signing-secret", "CDESK"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Replies:
    """Counts what the stand-in posted per channel, so each fan can wait for its next reply
    without scanning everything sent (one watcher instead of one scan per fan)."""

    def __init__(self, standin: SlackStandIn) -> None:
        self._standin = standin
        self._seen = 0
        self.counts: Counter[str] = Counter()
        self._changed = asyncio.Event()

    async def watch(self) -> None:
        while True:
            await self._standin.wait_for_sent(count=self._seen + 1, timeout=3600)
            fresh = self._standin.sent[self._seen :]
            self._seen += len(fresh)
            for message in fresh:
                self.counts[message.channel or ""] += 1
            self._changed.set()
            self._changed = asyncio.Event()

    async def more_than(self, channel: str, count: int) -> None:
        while self.counts[channel] <= count:
            await asyncio.wait_for(self._changed.wait(), 60)


async def load(standin: SlackStandIn, replies: Replies, targets: list[str], slots: list[list[str]], messages: int) -> float:
    """Messages answered per second with the fans spread over `targets` (worker URLs): each
    slot is one message in flight at a time, from its own fans in turn, so conversations stay
    short (a model server's work per message grows with the length of the fan's tracker)."""
    numbers = itertools.count()

    async def slot(fans: list[str]) -> None:
        turn = 0
        while (number := next(numbers)) < messages:
            user = fans[turn % len(fans)]
            turn += 1
            channel = standin.dm_channel(user)
            before = replies.counts[channel]
            standin.http_target = targets[int(user[-4:]) % len(targets)]  # read before the send's first await
            delivery = await standin.send_dm(user, QUESTIONS[number % len(QUESTIONS)])
            assert delivery.status == 200, delivery.status
            await replies.more_than(channel, before)

    started = time.perf_counter()
    await asyncio.gather(*(slot(fans) for fans in slots))
    return messages / (time.perf_counter() - started)


async def start_worker(env: dict[str, str], name: str, engine_url: str, spool_dir: str) -> tuple[asyncio.subprocess.Process, str]:
    port = free_port()
    worker_env = {**env, "BOT_ENGINE_URL": engine_url, "BOT_SLACK_HTTP_PORT": str(port), "BOT_STORE_SPOOL_PATH": f"{spool_dir}/spool-{name}.db"}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "--model", str(MODEL), "run", "--no-discord", cwd=REPO, env=worker_env,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )
    assert process.stderr is not None
    deadline = time.monotonic() + 120
    said: list[str] = []
    while time.monotonic() < deadline:
        line = (await asyncio.wait_for(process.stderr.readline(), 120)).decode()
        if not line:
            raise RuntimeError(f"worker {name} ended before serving; its last lines:\n" + "".join(said[-5:]))
        said.append(line)
        if "slack connector serving in http mode" in line:
            asyncio.create_task(_drain(process.stderr))  # keep reading: a full pipe would stall it
            return process, f"http://127.0.0.1:{port}/slack/events"
    raise RuntimeError(f"worker {name} did not serve within 120 s")


async def _drain(stream: asyncio.StreamReader) -> None:
    while await stream.readline():
        pass


async def main_async(args: argparse.Namespace, url: str) -> None:
    token = "throughput-bench-engine-token-0123456789"
    servers = [start_model_server(token=token), start_model_server(token=token)]
    standin = SlackStandIn(bot_token=BOT_TOKEN, signing_secret=SECRET, mode="http")
    await standin.start()
    fans = [f"UFAN{n:04d}" for n in range(args.fans)]
    slots = [fans[n :: args.concurrency] for n in range(args.concurrency)]
    for user in fans:
        standin.add_user(user, user.lower())
    standin.add_channel(DESK, members=["UBOT"])
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BOT_", "SLACK_", "DISCORD_"))}
    env.update(PRIVACY_CONTACTS)  # `bot run` with a platform refuses empty contacts (issue 17)
    spool = tempfile.mkdtemp(prefix="throughput-")
    env.update(
        BOT_PSEUDONYM_KEY="throughput-bench-pseudonym-key-0123456789abcdef", BOT_MASTER_KEYS=MasterKeys.generate(),
        BOT_STORE_URL=url, BOT_ENGINE_TOKEN=token, BOT_HANDOFF_DESK=f"slack:{DESK}", BOT_SLACK_MODE="http",
        BOT_LOGGING_LEVEL="INFO", BOT_SECRETS_DEV_KEYS_FILE=f"{spool}/never-used.env",
        SLACK_BOT_TOKEN=BOT_TOKEN, SLACK_SIGNING_SECRET=SECRET, SLACK_API_BASE_URL=standin.api_base_url,
    )
    init = await asyncio.create_subprocess_exec(sys.executable, "-m", "bot", "db", "init", cwd=REPO, env=env)
    assert await init.wait() == 0
    workers = [await start_worker(env, name, server.url, spool) for name, server in zip("AB", servers)]
    replies = Replies(standin)
    watcher = asyncio.create_task(replies.watch())
    try:
        urls = [target for _, target in workers]
        await load(standin, replies, urls, slots, len(fans))  # warm: every fan's first contact, on both workers
        results: dict[str, list[float]] = {"1 worker": [], "2 workers": []}
        roles = {"workers": [process.pid for process, _ in workers], "model servers": [server.process.pid for server in servers],
                 "driver and stand-in": [os.getpid()]}
        for _ in range(args.repeats):
            for label, targets in (("1 worker", urls[:1]), ("2 workers", urls)):
                before = {role: sum(cpu_seconds(pid) for pid in pids) for role, pids in roles.items()}
                rate = await load(standin, replies, targets, slots, args.messages)
                spent = {role: sum(cpu_seconds(pid) for pid in pids) - before[role] for role, pids in roles.items()}
                results[label].append(rate)
                per_message = ", ".join(f"{role} {1000 * seconds / args.messages:.1f}" for role, seconds in spent.items())
                print(f"  {label}: {rate:.1f} msg/s; CPU ms per message: {per_message} (load average {load_average()})", flush=True)
        ratios = [two / one for one, two in zip(results["1 worker"], results["2 workers"])]
        print(
            f"{args.fans} fans, {args.concurrency} in flight, {args.messages} messages per run: 1 worker {statistics.median(results['1 worker']):.1f} msg/s, "
            f"2 workers {statistics.median(results['2 workers']):.1f} msg/s; ratio per repeat "
            + ", ".join(f"{r:.2f}" for r in ratios) + " (target >= 1.6)"
        )
    finally:
        watcher.cancel()
        for process, _ in workers:
            process.terminate()
            await process.wait()
        for server in servers:
            server.stop()
        await standin.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fans", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=16, help="messages in flight at once")
    parser.add_argument("--messages", type=int, default=400, help="messages per configuration and repeat")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    server = os.environ.get("BOT_BENCH_POSTGRES_URL") or os.environ.get("BOT_TEST_POSTGRES_URL")
    if not server:
        print("set BOT_BENCH_POSTGRES_URL (a PostgreSQL server URL), or run under tests/with_postgres.sh")
        return
    with scratch_database(server) as url:
        asyncio.run(main_async(args, url))


if __name__ == "__main__":
    main()
