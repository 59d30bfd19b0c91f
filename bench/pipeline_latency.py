"""Per-message latency of the full pipeline (`Bot.handle`) against bare `Agent.handle_text`.

The pipeline side includes everything a fan message costs: pseudonyms, guards, the model,
redaction, encryption and the SQLite write of both turns. Same model, same messages, one process, measurements interleaved so machine noise hits
both sides alike. Prints p50/p99 of each and the pipeline/bare ratios (target: p50 ratio
at most 1.10). Figures only; nothing here asserts on time.

    .venv/bin/python bench/pipeline_latency.py [--rounds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.config import AssistantSettings  # noqa: E402
from bot.conversation import ConversationMemory  # noqa: E402
from bot.core import Bot  # noqa: E402
from bot.engine.rasa_engine import RasaEngine  # noqa: E402
from bot.messages import Incoming  # noqa: E402
from bot.privacy.crypto import MasterKeys  # noqa: E402
from bot.privacy.pseudonym import Pseudonymizer  # noqa: E402
from bot.privacy.store import TranscriptStore  # noqa: E402

MODEL = Path(__file__).resolve().parents[1] / "rasa_project" / "models" / "fan.tar.gz"
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


async def measure(rounds: int) -> None:
    engine = RasaEngine.load(MODEL, tracker_idle_seconds=3600)
    agent = engine.agent  # the bare side uses the very same loaded agent
    folder = tempfile.TemporaryDirectory(prefix="bench-pipeline-")
    store = TranscriptStore.open(f"sqlite:///{folder.name}/transcripts.db", None, MasterKeys.parse(MasterKeys.generate()))
    bot = Bot(
        engine, Pseudonymizer(b"bench-key-0123456789abcdef0123456789"), AssistantSettings(), ConversationMemory(3600), store
    )
    for text in MESSAGES[:5]:  # warm-up: first calls pay for lazy initialisation
        await agent.handle_text(text, sender_id="warmup-bare")
        await bot.handle(Incoming("bench", "warmup", "c", text))

    bare: list[float] = []
    pipeline: list[float] = []
    for round_number in range(rounds):
        for index, text in enumerate(MESSAGES):
            async def run_bare() -> None:
                start = time.perf_counter()
                await agent.handle_text(text, sender_id=f"bare-{round_number}")
                bare.append(time.perf_counter() - start)

            async def run_pipeline() -> None:
                start = time.perf_counter()
                await bot.handle(Incoming("bench", f"fan-{round_number}", "c", text))
                pipeline.append(time.perf_counter() - start)

            first, second = (run_bare, run_pipeline) if (index + round_number) % 2 else (run_pipeline, run_bare)
            await first()
            await second()

    def ms(value: float) -> str:
        return f"{value * 1000:.2f} ms"

    b50, b99 = percentile(bare, 0.5), percentile(bare, 0.99)
    p50, p99 = percentile(pipeline, 0.5), percentile(pipeline, 0.99)
    print(f"messages per side: {len(bare)} ({rounds} rounds x {len(MESSAGES)} messages)")
    print(f"bare Agent.handle_text: p50 {ms(b50)}  p99 {ms(b99)}  mean {ms(statistics.mean(bare))}")
    print(f"Bot.handle pipeline:    p50 {ms(p50)}  p99 {ms(p99)}  mean {ms(statistics.mean(pipeline))}")
    print(f"ratio pipeline/bare: p50 {p50 / b50:.3f} (target <= 1.10)  p99 {p99 / b99:.3f}")
    print(f"throughput (pipeline, sequential): {1 / statistics.mean(pipeline):.0f} messages/s")
    await store.aclose()
    folder.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    asyncio.run(measure(args.rounds))


if __name__ == "__main__":
    main()
