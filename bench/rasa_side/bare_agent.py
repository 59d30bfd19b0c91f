"""Bare Rasa for the benchmarks, run in Rasa's environment (`rasa_project/.venv/bin/python`).

Loads the model with `Agent.load` (skops imported first, as `addons.serve` does), then the
server's checks (`addons.decide.Decider.load`: the encoder warmed, BLAS pinned to one thread,
`gc.freeze`), so this process runs under the same settings as a model server. Prints
`{"loaded_s": ...}`, then answers each JSON line on stdin (`{"sender", "text", "decider"}`) with
`{"seconds": ...}`: the time of `Agent.handle_text` alone, or with `decider` true, of
`Agent.handle_text` with the sentence encoder beside it, as the channel runs them (the model's
whole work without HTTP: what the in-process engine did before issue 15). The bot's side
(`bench/servers.py`'s `BareRasa`) drives it, so both sides interleave in one run.

    rasa_project/.venv/bin/python bench/rasa_side/bare_agent.py MODEL
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[2] / "rasa_project"
sys.path.insert(0, str(PROJECT))


def main() -> None:
    import skops.io  # noqa: F401  # before TensorFlow (addons/serve.py says why)
    from addons.quiet import quiet_rasa

    quiet_rasa()
    started = time.perf_counter()
    from addons.decide import Decider
    from rasa.core.agent import Agent

    model = Path(sys.argv[1])
    agent = Agent.load(str(model))
    decider = Decider.load(model, agent.domain.responses)
    loop = asyncio.new_event_loop()

    async def one(request: dict) -> float:
        begin = time.perf_counter()
        if request.get("decider"):
            pending = decider.neighbours_soon(request["text"])
            await agent.handle_text(request["text"], sender_id=request["sender"])
            if pending is not None:
                await pending
        else:
            await agent.handle_text(request["text"], sender_id=request["sender"])
        return time.perf_counter() - begin

    print(json.dumps({"loaded_s": time.perf_counter() - started}), flush=True)
    for line in sys.stdin:
        if line.strip():
            print(json.dumps({"seconds": loop.run_until_complete(one(json.loads(line)))}), flush=True)


if __name__ == "__main__":
    main()
