"""Per-message latency of the full pipeline (`Bot.handle`) against bare `Agent.handle_text`
and against the pipeline as it was before issue 14 ("main's pipeline"), in the same run.

The pipeline side includes everything a fan message costs: pseudonyms, guards, the model,
redaction, encryption and the SQLite write of both turns. Main's pipeline is the same `Bot`
with the sentence-encoder gate and vote off (an engine on the same agent without a gate) and
the language guard off (every language it could detect configured as understood): the parts
issue 14 added that cost more than microseconds. Same model, same messages, one process, the
three sides interleaved in rotating order so machine noise hits all alike. Prints p50/p99 of
each and the ratios (targets: pipeline/main p50 <= 1.5, main/bare <= 1.10). Figures only;
nothing here asserts on time.

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
from bot.language import CANDIDATES  # noqa: E402
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
    agent = engine.agent  # every side uses the very same loaded agent
    without_gate = RasaEngine(agent, engine._trackers, engine._vocabulary, gate=None)  # noqa: SLF001
    folder = tempfile.TemporaryDirectory(prefix="bench-pipeline-")
    store = TranscriptStore.open(f"sqlite:///{folder.name}/transcripts.db", None, MasterKeys.parse(MasterKeys.generate()))
    pseudonyms = Pseudonymizer(b"bench-key-0123456789abcdef0123456789")
    bot = Bot(engine, pseudonyms, AssistantSettings(), ConversationMemory(3600), store)
    main_bot = Bot(without_gate, pseudonyms, AssistantSettings(languages=CANDIDATES), ConversationMemory(3600), store)
    for text in MESSAGES[:5]:  # warm-up: first calls pay for lazy initialisation
        await agent.handle_text(text, sender_id="warmup-bare")
        await bot.handle(Incoming("bench", "warmup", "c", text))
        await main_bot.handle(Incoming("bench", "warmup-main", "c", text))

    samples: dict[str, list[float]] = {"bare": [], "main": [], "now": []}

    async def timed(side: str, text: str, round_number: int) -> None:
        start = time.perf_counter()
        if side == "bare":
            await agent.handle_text(text, sender_id=f"bare-{round_number}")
        else:
            await (bot if side == "now" else main_bot).handle(Incoming("bench", f"{side}-{round_number}", "c", text))
        samples[side].append(time.perf_counter() - start)

    order = ["bare", "main", "now"]
    for round_number in range(rounds):
        for index, text in enumerate(MESSAGES):
            shift = (index + round_number) % 3
            for side in order[shift:] + order[:shift]:
                await timed(side, text, round_number)

    def ms(value: float) -> str:
        return f"{value * 1000:.2f} ms"

    p = {side: (percentile(v, 0.5), percentile(v, 0.99)) for side, v in samples.items()}
    print(f"messages per side: {len(samples['bare'])} ({rounds} rounds x {len(MESSAGES)} messages)")
    print(f"bare Agent.handle_text:        p50 {ms(p['bare'][0])}  p99 {ms(p['bare'][1])}  mean {ms(statistics.mean(samples['bare']))}")
    print(f"main's pipeline (no encoder):  p50 {ms(p['main'][0])}  p99 {ms(p['main'][1])}  mean {ms(statistics.mean(samples['main']))}")
    print(f"Bot.handle pipeline (now):     p50 {ms(p['now'][0])}  p99 {ms(p['now'][1])}  mean {ms(statistics.mean(samples['now']))}")
    print(f"ratio now/main: p50 {p['now'][0] / p['main'][0]:.3f} (target <= 1.5)  p99 {p['now'][1] / p['main'][1]:.3f}")
    print(f"ratio main/bare: p50 {p['main'][0] / p['bare'][0]:.3f} (target <= 1.10)  now/bare p50 {p['now'][0] / p['bare'][0]:.3f}")
    print(f"throughput (pipeline now, sequential): {1 / statistics.mean(samples['now']):.0f} messages/s")
    await store.aclose()
    folder.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    asyncio.run(measure(args.rounds))


if __name__ == "__main__":
    main()
