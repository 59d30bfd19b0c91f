"""Runs every benchmark in turn (what `make bench` does); each prints its own figures.

Those that need the model start their own model servers in Rasa's environment
(`bench/servers.py`); `bench/soak.py` (minutes) and the evaluations that need the shared dev sets
(`offtopic_eval.py`, `language_eval.py`) are run by hand (docs/benchmarks.md has the commands)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHMARKS = [
    "model_costs.py",
    "pipeline_latency.py",
    "nlu_eval.py",
    "redaction_quality.py",
    "store_costs.py",
    "handoff_latency.py",
    "slack_latency.py",
    "discord_latency.py",
    "startup.py",
    "scaling.py",
    "report.py",
]

for script in BENCHMARKS:
    print(f"\n== bench/{script}", flush=True)
    subprocess.run([sys.executable, str(HERE / script)], check=True)
