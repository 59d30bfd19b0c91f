"""Training time, model server start time and memory of the assistant's Rasa model.

Since issue 15 the model runs in its own server in Rasa's environment (`rasa_project/.venv`,
Python 3.10). Training runs `rasa train --force` there (no cache reuse) into a temporary folder;
the start time and memory come from a fresh model server started as `bot` starts it
(`bench/servers.py`): from the process start until its health route says ok (Rasa's imports,
the encoder compiled, the model loaded, the checks warmed), then 40 messages through
`ModelServerEngine`; RSS is the server process's VmRSS and its peak (VmHWM). Targets (issue 14,
with the sentence encoder): training <= 120 s, load <= 15 s, RSS <= 900 MB.

    .venv/bin/python bench/model_costs.py [--skip-training]
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.servers import PROJECT, RASA, hwm_mb, load_average, rss_mb, start_model_server  # noqa: E402
from bot.engine.remote import ModelServerEngine  # noqa: E402
from bot.quiet import quiet_environment  # noqa: E402


def train_seconds() -> float:
    with tempfile.TemporaryDirectory() as out:
        command = [str(RASA.python), "-m", "rasa", "train", "--force", "--out", out, "--fixed-model-name", "bench"]
        start = time.perf_counter()
        subprocess.run(command, cwd=PROJECT, env=quiet_environment(), check=True, capture_output=True)
        return time.perf_counter() - start


async def talk(url: str, token: str) -> None:
    engine = ModelServerEngine([url], token, timeout_seconds=60)
    try:
        for text in ["hi", "my stream keeps buffering", "when is the next episode", "where is my order"] * 10:
            await engine.respond("bench", text)
    finally:
        await engine.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-training", action="store_true")
    args = parser.parse_args()
    print(f"load average at start: {load_average()}")
    if not args.skip_training:
        seconds = train_seconds()
        print(f"training (rasa train --force, Rasa's environment): {seconds:.1f} s (target <= 120 s, ratio {seconds / 120:.2f})")
    server = start_model_server()
    try:
        ready_rss = rss_mb(server.process.pid)
        asyncio.run(talk(server.url, server.token))
        rss, peak = rss_mb(server.process.pid), hwm_mb(server.process.pid)
    finally:
        server.stop()
    print(f"model server start to ready (Rasa imports + encoder + Agent.load + checks): {server.ready_seconds:.1f} s "
          f"(target <= 15 s, ratio {server.ready_seconds / 15:.2f})")
    print(f"model server RSS: {ready_rss:.0f} MB when ready, {rss:.0f} MB after 40 messages, peak {peak:.0f} MB "
          f"(target <= 900 MB, ratio {peak / 900:.2f})")
    print(f"load average at end: {load_average()}")


if __name__ == "__main__":
    main()
