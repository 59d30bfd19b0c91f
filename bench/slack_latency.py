"""What the Slack path adds over the bot's pipeline, and how fast slash commands are acked.

Since issue 15 the model runs in its own server (a real `rasa run` with the project's channel,
in Rasa's environment, started as `bot` starts it: `bench/servers.py`), and this process (the
bot's side: `Bot` with `ModelServerEngine`, the connector, the stand-in) holds no model, keeps
Python's default GIL switch interval and never calls `gc.freeze` (printed below).

(1) The same fan messages go through `Bot.handle` directly and through Slack (the local
stand-in on loopback -> Socket Mode or HTTP -> slack-bolt -> the connector -> the bot ->
chat.postMessage back to the stand-in), interleaved so machine noise hits both alike;
the Slack figure is from the stand-in sending the event to it recording the last reply.
(2) Slash command ack time (the stand-in's send to the ack) while the model is kept busy
by 4 fans messaging at the same time. Target: ack p99 <= 25 ms (issue 15). Real trained model,
real SQLite store; figures only, nothing asserts on time.

    .venv/bin/python bench/slack_latency.py [--mode socket|http|both] [--rounds 4] [--commands 100]
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.pipeline_latency import MESSAGES  # noqa: E402
from bench.servers import ModelServer, bot_side_settings, load_average, start_model_server  # noqa: E402
from bot.config import AssistantSettings, HandoffSettings, SlackSettings  # noqa: E402
from bot.conversation import ConversationMemory  # noqa: E402
from bot.core import Bot  # noqa: E402
from bot.engine.remote import ModelServerEngine  # noqa: E402
from bot.handoff.desk import ConsoleDesk  # noqa: E402
from bot.messages import Incoming  # noqa: E402
from bot.privacy.crypto import MasterKeys  # noqa: E402
from bot.privacy.pseudonym import Pseudonymizer  # noqa: E402
from bot.privacy.store import TranscriptStore  # noqa: E402
from connectors.router import Router  # noqa: E402
from connectors.slack_connector import SlackConnector, SlackTokens  # noqa: E402
from standins.slack import SlackStandIn  # noqa: E402

ACK_TARGET_MS = 25.0


def shorten_bolt_ack_poll(poll_ms: float) -> None:
    """An experiment only (`--bolt-poll-ms`): slack-bolt's async listener runner waits for
    `ack()` by sleeping 10 ms at a time (`slack_bolt/listener/asyncio_runner.py`: `await
    asyncio.sleep(0.01)` while `ack.response is None`); this shortens that sleep in that module
    alone, to show how much of an ack is the poll. The connector is not changed."""
    import slack_bolt.listener.asyncio_runner as runner

    class _Asyncio:
        def __getattr__(self, name: str) -> object:
            return getattr(asyncio, name)

        @staticmethod
        async def sleep(delay: float, *args: object, **kwargs: object) -> object:
            return await asyncio.sleep(min(delay, poll_ms / 1000), *args, **kwargs)

    runner.asyncio = _Asyncio()  # type: ignore[assignment]


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def line(label: str, samples: list[float]) -> str:
    return f"{label}: p50 {percentile(samples, 0.5):.1f} ms  p99 {percentile(samples, 0.99):.1f} ms  (n={len(samples)})"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def measure(mode: str, server: ModelServer, rounds: int, commands: int, folder: str) -> None:
    engine = ModelServerEngine([server.url], server.token, timeout_seconds=60)
    store = TranscriptStore.open(f"sqlite:///{folder}/{mode}.db", None, MasterKeys.parse(MasterKeys.generate()))
    bot = Bot(engine, Pseudonymizer(b"bench-slack-key-0123456789abcdef0123"), AssistantSettings(), ConversationMemory(3600), store, handoff=HandoffSettings())
    standin = SlackStandIn(bot_token="xoxb-bench", app_token="xapp-bench", signing_secret="bench-secret", mode=mode, redeliver_unacked=False)
    await standin.start()
    settings = SlackSettings(mode=mode, http_port=free_port(), api_base_url=standin.api_base_url)
    router = Router(ConsoleDesk(lambda message: None))  # /human tickets go nowhere here
    connector = SlackConnector(settings, SlackTokens("xoxb-bench", "xapp-bench", "bench-secret"), router, http_host="127.0.0.1")
    router.add_platform("slack", connector)
    task = asyncio.create_task(connector.run(bot))
    if mode == "socket":
        await standin.wait_for_socket(10)
    else:
        while connector.http_port is None:
            await asyncio.sleep(0.01)
        standin.http_target = f"http://127.0.0.1:{settings.http_port}{settings.http_path}"

    # Warm both paths (first contact sends the disclosure too; not measured).
    await bot.handle(Incoming("slack", "UWARM0", "im", "hello"))
    await standin.send_dm("UWARM1", "hello")
    await standin.wait_for_sent(lambda m: m.channel == standin.dm_channel("UWARM1"), count=2, timeout=30)

    direct: list[float] = []
    through_slack: list[float] = []
    for round_ in range(rounds):
        for index, text in enumerate(MESSAGES):
            fan = f"UDIRECT{round_}X{index}"
            await bot.handle(Incoming("slack", fan, "im", "hi"))  # past first contact
            start = time.perf_counter()
            replies = await bot.handle(Incoming("slack", fan, "im", text))
            direct.append((time.perf_counter() - start) * 1000)

            fan = f"USLACK{round_}X{index}"
            channel = standin.dm_channel(fan)
            await standin.send_dm(fan, "hi")
            await standin.wait_for_sent(lambda m: m.channel == channel, count=2, timeout=30)  # disclosure + answer
            start = time.perf_counter()
            await standin.send_dm(fan, text)
            await standin.wait_for_sent(lambda m: m.channel == channel, count=2 + len(replies), timeout=30)
            through_slack.append((time.perf_counter() - start) * 1000)
    added = [s - d for s, d in zip(sorted(through_slack), sorted(direct))]
    print(f"[{mode}] " + line("Bot.handle (model over HTTP)", direct))
    print(f"[{mode}] " + line("through Slack (event sent -> last reply recorded)", through_slack))
    print(
        f"[{mode}] added by the Slack path: p50 {percentile(through_slack, 0.5) - percentile(direct, 0.5):.1f} ms, "
        f"p99 {percentile(through_slack, 0.99) - percentile(direct, 0.99):.1f} ms; "
        f"p50 ratio {percentile(through_slack, 0.5) / percentile(direct, 0.5):.2f}  (quantile differences; median of paired-by-rank {percentile(added, 0.5):.1f} ms)"
    )

    # Slash command acks with nothing else going on: the floor the busy figure is read against.
    idle: list[float] = []
    for index in range(min(commands, 50)):
        delivery = await standin.send_command(("/why", "/privacy", "/human", "/my-data")[index % 4], "", f"UIDLE{index}")
        if delivery.latency_ms is not None and delivery.acked:
            idle.append(delivery.latency_ms)
        await asyncio.sleep(0.02)
    print(f"[{mode}] " + line("slash command ack, model idle", idle))

    # Slash command acks while the model is busy with a stream of fan messages.
    busy = asyncio.Event()

    async def keep_model_busy(worker: int) -> None:
        """Closed loop: each worker sends its next message once the last one is answered,
        so the model is never idle but no backlog grows without bound."""
        fan, count = f"UBUSY{worker}", 0
        channel = standin.dm_channel(fan)
        while not busy.is_set():
            before = len([m for m in standin.sent if m.channel == channel])
            await standin.send_dm(fan, MESSAGES[count % len(MESSAGES)])
            await standin.wait_for_sent(lambda m: m.channel == channel, count=before + 1, timeout=30)
            count += 1

    workers = [asyncio.create_task(keep_model_busy(w)) for w in range(4)]
    await asyncio.sleep(0.5)
    acks: list[float] = []
    slowest: list[tuple[float, str]] = []
    for index in range(commands):
        command = ("/why", "/privacy", "/human", "/my-data")[index % 4]
        delivery = await standin.send_command(command, "", f"UCMD{index}")
        if delivery.latency_ms is not None and delivery.acked:
            acks.append(delivery.latency_ms)
            slowest = sorted([*slowest, (delivery.latency_ms, command)], reverse=True)[:3]
        await asyncio.sleep(0.02)
    busy.set()
    await asyncio.gather(*workers)
    print(f"[{mode}] model kept busy by {len(workers)} fans messaging in a closed loop meanwhile; slowest acks: "
          + ", ".join(f"{command} {ms:.0f} ms" for ms, command in slowest))
    p99 = percentile(acks, 0.99)
    print(f"[{mode}] " + line(f"slash command ack while the model is busy ({commands} commands, {len(acks)} acked)", acks)
          + f"  target p99 < {ACK_TARGET_MS:g} ms, ratio {p99 / ACK_TARGET_MS:.2f}")

    await connector.aclose()
    await asyncio.wait_for(task, 10)
    await bot.drain()
    await standin.aclose()
    await store.aclose()
    await engine.aclose()


async def main_async(modes: list[str], rounds: int, commands: int) -> None:
    print(f"{bot_side_settings()}; load average {load_average()}")
    server = start_model_server()
    try:
        with tempfile.TemporaryDirectory(prefix="bench-slack-") as folder:
            for mode in modes:
                await measure(mode, server, rounds, commands, folder)
    finally:
        server.stop()
    print(f"load average at end: {load_average()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=["socket", "http", "both"], default="both")
    parser.add_argument("--rounds", type=int, default=4, help="passes over the message set")
    parser.add_argument("--commands", type=int, default=100)
    parser.add_argument("--bolt-poll-ms", type=float, help="experiment: shorten slack-bolt's 10 ms ack poll (see shorten_bolt_ack_poll)")
    args = parser.parse_args()
    if args.bolt_poll_ms is not None:
        shorten_bolt_ack_poll(args.bolt_poll_ms)
        print(f"experiment: slack-bolt's ack poll shortened from 10 ms to {args.bolt_poll_ms:g} ms")
    asyncio.run(main_async(["socket", "http"] if args.mode == "both" else [args.mode], args.rounds, args.commands))


if __name__ == "__main__":
    main()
