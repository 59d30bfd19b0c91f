"""Runs every benchmark in turn (what `make bench` does); each prints its own figures."""

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
]

for script in BENCHMARKS:
    print(f"\n== bench/{script}", flush=True)
    subprocess.run([sys.executable, str(HERE / script)], check=True)
