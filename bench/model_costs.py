"""Training time, model load time and peak memory of the assistant's Rasa model.

Training runs `rasa train --force` (no cache reuse) into a temporary folder; load time and
peak RSS come from a fresh child process that loads the model and answers a few messages,
as `bot run` does. Targets (issue 14, with the sentence encoder): training <= 120 s, load <= 15 s, RSS <= 900 MB.

    .venv/bin/python bench/model_costs.py [--skip-training]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.quiet import quiet_environment  # noqa: E402

PROJECT = ROOT / "rasa_project"
MODEL = PROJECT / "models" / "fan.tar.gz"

CHILD = r"""
import asyncio, json, resource, sys, time
sys.path.insert(0, sys.argv[2])
from bot.engine.rasa_engine import RasaEngine  # light: Rasa itself is imported by load()
imported = time.perf_counter()
engine = RasaEngine.load(__import__("pathlib").Path(sys.argv[1]), 600)
loaded = time.perf_counter()
async def talk():
    for text in ["hi", "my stream keeps buffering", "when is the next episode", "where is my order"] * 10:
        await engine.respond("bench", text)
asyncio.run(talk())
print(json.dumps({
    "load_s": loaded - imported,
    "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
}))
"""


def train_seconds() -> float:
    with tempfile.TemporaryDirectory() as out:
        command = [sys.executable, "-m", "rasa", "train", "--force", "--out", out, "--fixed-model-name", "bench"]
        start = time.perf_counter()
        subprocess.run(command, cwd=PROJECT, env=quiet_environment(), check=True, capture_output=True)
        return time.perf_counter() - start


def load_figures() -> dict[str, float]:
    completed = subprocess.run(
        [sys.executable, "-c", CHILD, str(MODEL), str(ROOT)],
        env=quiet_environment(),
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(completed.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-training", action="store_true")
    args = parser.parse_args()
    if not args.skip_training:
        seconds = train_seconds()
        print(f"training (rasa train --force): {seconds:.1f} s (target <= 120 s, ratio {seconds / 120:.2f})")
    figures = load_figures()
    print(
        f"model load (Rasa import + Agent.load, as `bot run` pays it): {figures['load_s']:.1f} s "
        f"(target <= 15 s, ratio {figures['load_s'] / 15:.2f})"
    )
    print(f"peak RSS after load + 40 messages: {figures['peak_rss_mb']:.0f} MB (target <= 900 MB, ratio {figures['peak_rss_mb'] / 900:.2f})")


if __name__ == "__main__":
    main()
