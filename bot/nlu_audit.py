"""The fairness audit: is the model as good for fans who write casually, with typos or as
non-native speakers as for those who write standard English?

Runs the labelled register set (tests/data/nlu_registers.jsonl, written for the purpose and
never trained on) through the trained model the way the core does (normalised, minimized) and
reports macro-F1 per register and the worst/best ratio. A fallback counts as a miss.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from bot.engine import DialogueEngine
from bot.normalize import normalize
from bot.transcript import minimized

REGISTERS = Path(__file__).resolve().parent.parent / "tests" / "data" / "nlu_registers.jsonl"


def macro_f1(gold: list[str], predicted: list[str]) -> float:
    """Mean F1 over the intents present in `gold` (a prediction outside them only costs precision)."""
    scores = []
    for label in sorted(set(gold)):
        tp = sum(1 for g, p in zip(gold, predicted) if g == label and p == label)
        fp = sum(1 for g, p in zip(gold, predicted) if g != label and p == label)
        fn = sum(1 for g, p in zip(gold, predicted) if g == label and p != label)
        scores.append(0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn))
    return sum(scores) / len(scores) if scores else 0.0


async def audit(engine: DialogueEngine, path: Path = REGISTERS) -> dict[str, Any]:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]  # noqa: ASYNC240 - offline audit, no fan waits
    gold: dict[str, list[str]] = defaultdict(list)
    predicted: dict[str, list[str]] = defaultdict(list)
    misses: list[dict[str, Any]] = []
    for number, row in enumerate(rows):
        result = await engine.respond(f"nlu-audit-{number}", minimized(normalize(row["text"])))
        await engine.forget(f"nlu-audit-{number}")
        gold[row["register"]].append(row["intent"])
        predicted[row["register"]].append(result.intent or "none")
        if result.intent != row["intent"]:
            misses.append({"register": row["register"], "intent": row["intent"], "predicted": result.intent})
    per_register = {name: round(macro_f1(gold[name], predicted[name]), 4) for name in gold}
    worst, best = min(per_register.values()), max(per_register.values())
    return {
        "examples": len(rows),
        "macro_f1": per_register,
        "worst": worst,
        "worst_best_ratio": round(worst / best, 4) if best else 0.0,
        "misses": len(misses),
    }


def render(report: dict[str, Any]) -> str:
    lines = [f"{name:<12} macro-F1 {score:.3f}" for name, score in report["macro_f1"].items()]
    lines.append(f"worst {report['worst']:.3f}  worst/best {report['worst_best_ratio']:.3f}  ({report['examples']} examples, {report['misses']} missed)")
    return "\n".join(lines)
