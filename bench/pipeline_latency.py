"""Per-message latency of the bot's whole pipeline (`Bot.handle` through a model server)
against bare `Agent.handle_text` in Rasa's environment, and against the pipeline as it was
before issue 14 ("main's pipeline"), all in the same run.

Since issue 15 the model runs in its own server (`rasa run` with the project's channel, in
Rasa's environment, Python 3.10) and the bot (Python 3.12) reaches it over HTTP through
`ModelServerEngine`. Five sides, interleaved in rotating order so machine noise hits all alike,
same model, same messages:

- bare: `Agent.handle_text` alone, timed inside a child process in Rasa's environment
  (`bench/rasa_side/bare_agent.py`, under the server's settings: BLAS one thread, `gc.freeze`);
- model: the same child, `Agent.handle_text` with the sentence encoder beside it as the channel
  runs them: the model's whole work without HTTP (what the in-process engine did before);
- server: `ModelServerEngine.respond` alone (HTTP + the channel + the model);
- http: a GET of the server's health route on the same client session: the transport alone
  (aiohttp, loopback, Sanic's routing), no model;
- main: `Bot.handle` through a second model server whose model has no embeddings beside it
  (the encoder gate and vote off) with the language guard off: issue 14's "main's pipeline";
- now: `Bot.handle` through the model server: pseudonyms, guards, the model over HTTP,
  redaction, encryption, queueing the SQLite write of both turns.

Prints p50/p99 of each and the ratios: now/bare (issue 15, target <= 1.20), now/main (issue 14,
target <= 1.5), now/model (what the split costs over the in-process model work). Figures only;
nothing here asserts on time.

    .venv/bin/python bench/pipeline_latency.py [--rounds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.servers import MODEL, BareRasa, load_average, start_model_server  # noqa: E402
from bot.config import AssistantSettings  # noqa: E402
from bot.conversation import ConversationMemory  # noqa: E402
from bot.core import Bot  # noqa: E402
from bot.engine.remote import ModelServerEngine  # noqa: E402
from bot.language import CANDIDATES  # noqa: E402
from bot.messages import Incoming  # noqa: E402
from bot.privacy.crypto import MasterKeys  # noqa: E402
from bot.privacy.pseudonym import Pseudonymizer  # noqa: E402
from bot.privacy.store import TranscriptStore  # noqa: E402

#: Ordinary fan messages (no commands, no bot-or-human questions: those skip the model,
#: which would flatter the pipeline).
MESSAGES = [
    "hey there",
    "how much is the premium plan",
    "i was charged twice this month",
    "can't log in, it says my password is wrong",
    "how do i reset my 2fa",
    "the stream keeps buffering on my tv",
    "no sound on episode 4",
    "when does the next episode of starfall chronicles drop",
    "is season 3 of neon harbor out yet",
    "are there tickets for the watch party",
    "when is the convention panel",
    "where is my hoodie order",
    "can i return a shirt that doesn't fit",
    "what are the spoiler rules here",
    "what gets you banned",
    "someone keeps harassing me in dms",
    "how do i report a user who doxxed me",
    "what should i watch next",
    "anything like neon harbor",
    "what can you do",
    "this is so frustrating nothing works",
    "thanks a lot",
    "ok cool",
    "nope",
    "what's the weather in paris",
    "bye!",
]


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def model_without_encoder(folder: Path) -> Path:
    """The same model and vocabulary without the training embeddings: the server's encoder gate
    and vote are off (`addons.ood.DomainGate.load`), the vocabulary check stays on."""
    copy = folder / MODEL.name
    shutil.copy(MODEL, copy)
    shutil.copy(MODEL.with_name(MODEL.name + ".vocabulary.json"), folder)
    return copy


async def measure(rounds: int) -> None:
    folder = tempfile.TemporaryDirectory(prefix="bench-pipeline-")
    print(f"load average at start: {load_average()}", flush=True)
    server = start_model_server()
    main_server = start_model_server(model_without_encoder(Path(folder.name)))
    bare = BareRasa()
    engine = ModelServerEngine([server.url], server.token, timeout_seconds=60)
    main_engine = ModelServerEngine([main_server.url], main_server.token, timeout_seconds=60)
    store = TranscriptStore.open(f"sqlite:///{folder.name}/transcripts.db", None, MasterKeys.parse(MasterKeys.generate()))
    pseudonyms = Pseudonymizer(b"bench-key-0123456789abcdef0123456789")
    bot = Bot(engine, pseudonyms, AssistantSettings(), ConversationMemory(3600), store)
    main_bot = Bot(main_engine, pseudonyms, AssistantSettings(languages=CANDIDATES), ConversationMemory(3600), store)
    try:
        for text in MESSAGES[:5]:  # warm-up: first calls pay for lazy initialisation
            bare.handle("warmup-bare", text)
            bare.handle("warmup-model", text, decider=True)
            await engine.respond("warmup-server", text)
            await bot.handle(Incoming("bench", "warmup", "c", text))
            await main_bot.handle(Incoming("bench", "warmup-main", "c", text))

        samples: dict[str, list[float]] = {"bare": [], "model": [], "http": [], "server": [], "main": [], "now": []}

        async def timed(side: str, text: str, round_number: int) -> None:
            sender = f"{side}-{round_number}"
            if side == "bare":
                samples[side].append(bare.handle(sender, text))
                return
            if side == "model":
                samples[side].append(bare.handle(sender, text, decider=True))
                return
            start = time.perf_counter()
            if side == "server":
                await engine.respond(sender, text)
            elif side == "http":
                await engine.ready(server.url)
            else:
                await (bot if side == "now" else main_bot).handle(Incoming("bench", sender, "c", text))
            samples[side].append(time.perf_counter() - start)

        order = list(samples)
        for round_number in range(rounds):
            for index, text in enumerate(MESSAGES):
                shift = (index + round_number) % len(order)
                for side in order[shift:] + order[:shift]:
                    await timed(side, text, round_number)

        def ms(value: float) -> str:
            return f"{value * 1000:.2f} ms"

        p = {side: (percentile(v, 0.5), percentile(v, 0.99)) for side, v in samples.items()}
        labels = {
            "bare": "bare Agent.handle_text (Rasa env):",
            "model": "Agent.handle_text + encoder beside:",
            "http": "GET health route (transport only):",
            "server": "ModelServerEngine.respond:",
            "main": "main's pipeline (no encoder), HTTP:",
            "now": "Bot.handle through the server:",
        }
        print(f"messages per side: {len(samples['bare'])} ({rounds} rounds x {len(MESSAGES)} messages)")
        for side, label in labels.items():
            print(f"{label:<37} p50 {ms(p[side][0])}  p99 {ms(p[side][1])}  mean {ms(statistics.mean(samples[side]))}")
        print(f"ratio now/bare: p50 {p['now'][0] / p['bare'][0]:.3f} (issue 15 target <= 1.20)  p99 {p['now'][1] / p['bare'][1]:.3f}")
        print(f"ratio now/main: p50 {p['now'][0] / p['main'][0]:.3f} (issue 14 target <= 1.5)  p99 {p['now'][1] / p['main'][1]:.3f}")
        print(f"ratio now/model (what the split adds over the in-process model work): p50 {p['now'][0] / p['model'][0]:.3f}  p99 {p['now'][1] / p['model'][1]:.3f}")
        print(f"ratio main/bare: p50 {p['main'][0] / p['bare'][0]:.3f}  server/model p50 {p['server'][0] / p['model'][0]:.3f}")
        print(f"throughput (pipeline now, sequential): {1 / statistics.mean(samples['now']):.0f} messages/s")
        print(f"load average at end: {load_average()}")
    finally:
        await engine.aclose()
        await main_engine.aclose()
        await store.aclose()
        bare.close()
        server.stop()
        main_server.stop()
        folder.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    asyncio.run(measure(args.rounds))


if __name__ == "__main__":
    main()
