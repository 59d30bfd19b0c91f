#!/usr/bin/env python3
"""Off-topic and bot-challenge dev sets through the whole assistant, as `bot replay` runs it.

Each line of a set is one fan's first message (a fresh user per line, so no fallback streak
or pending question carries over), played by a real `bot replay` process on the trained model.
Prints, per set: the share answered with a fallback and no in-domain answer, the number of
actions triggered (a handoff ticket, a data export, a privacy notice, an erasure request), the
ask-backs, and for the bot-challenge set the share that got the truthful AI answer.

Usage (from the repository root)::

    .venv/bin/python bench/offtopic_eval.py [--eval-dir DIR] [--json] [--show-misses]

The dev sets are found by bench/eval_dir.py (--eval-dir, NLU_EVAL_DIR, or shared/eval beside
the main checkout); when they are nowhere, it exits 2 with one line instead of guessing.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any, Optional

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))

from eval_dir import resolve  # noqa: E402  (the one place the dev sets are looked for)

#: Reply kinds that do something for the fan beyond talking: never on a guess.
ACTION_KINDS = frozenset({"handoff_started", "handoff_ticket", "data_export", "privacy_notice", "erasure_confirm_request", "erasure_done"})


def replay_lines(bot: Path, texts: list[str], *, config: Optional[Path] = None) -> list[list[dict[str, Any]]]:
    """The replies to each text, each sent by a new fan, through a real `bot replay` process."""
    with tempfile.TemporaryDirectory(prefix="offtopic_") as folder:
        script = Path(folder) / "script.jsonl"
        script.write_text("".join(json.dumps({"user": f"f{i}", "text": t}) + "\n" for i, t in enumerate(texts)), encoding="utf-8")
        command = [str(bot)] + (["--config", str(config)] if config else []) + ["replay", str(script)]
        done = subprocess.run(command, capture_output=True, text=True, cwd=REPO, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"bot replay failed ({done.returncode}): {done.stderr[-2000:]}")
    replies: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for line in done.stdout.splitlines():
        record = json.loads(line)
        if record["to"] == "user" and record["user"].startswith("f"):
            replies[int(record["user"][1:])].append(record)
    return [replies[i] for i in range(len(texts))]


def score(texts: list[str], replies: list[list[dict[str, Any]]]) -> dict[str, Any]:
    kinds = [{r["kind"] for r in rs} for rs in replies]
    fallback = sum(1 for k in kinds if "fallback" in k and "answer" not in k)
    actions = [(t, sorted(k & ACTION_KINDS)) for t, k in zip(texts, kinds) if k & ACTION_KINDS]
    answered = Counter(r.get("intent") for rs in replies for r in rs if r["kind"] == "answer")
    truthful = sum(1 for rs in replies if any(r["kind"] == "answer" and r.get("intent") == "bot_challenge" for r in rs))
    return {
        "messages": len(texts),
        "fallback": round(fallback / max(len(texts), 1), 4),
        "actions": len(actions),
        "ask_backs": sum(1 for k in kinds if "ask_back" in k or "handoff_offer" in k),
        "truthful_ai": round(truthful / max(len(texts), 1), 4),
        "answered_intents": dict(answered.most_common()),
        "action_examples": actions[:10],
    }


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--eval-dir", type=Path, help="folder of the dev sets (default: see bench/eval_dir.py)")
    parser.add_argument("--bot", type=Path, default=REPO / ".venv" / "bin" / "bot")
    parser.add_argument("--config", type=Path, help="bot config file (default: the built-in defaults)")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--show-misses", action="store_true", help="print off-topic lines that got an answer")
    args = parser.parse_args(argv)
    eval_dir = resolve(args.eval_dir)
    sets = {name: [line.strip() for line in (eval_dir / f"{name}_dev.txt").read_text(encoding="utf-8").splitlines() if line.strip()] for name in ("off_topic", "bot_challenge")}
    texts = sets["off_topic"] + sets["bot_challenge"]
    replies = replay_lines(args.bot, texts, config=args.config)
    split = len(sets["off_topic"])
    results = {"off_topic": score(sets["off_topic"], replies[:split]), "bot_challenge": score(sets["bot_challenge"], replies[split:])}
    if args.json:
        print(json.dumps(results, indent=2, ensure_ascii=False))
        return 0
    off, challenge = results["off_topic"], results["bot_challenge"]
    print(f"off_topic_dev: {off['messages']} messages  fallback={off['fallback']:.3f} (target >= 0.95)  actions={off['actions']} (target 0)  ask_backs={off['ask_backs']}")
    print(f"  answered as: {off['answered_intents']}")
    for text, kinds in off["action_examples"]:
        print(f"  action {kinds}: {text}")
    print(f"bot_challenge_dev: {challenge['messages']} messages  truthful_ai={challenge['truthful_ai']:.3f} (target 1.00)  actions={challenge['actions']}")
    if args.show_misses:
        for text, rs in zip(sets["off_topic"], replies[:split]):
            answers = [r.get("intent") for r in rs if r["kind"] == "answer"]
            if answers:
                print(f"  answered {answers}: {text}")
        for text, rs in zip(sets["bot_challenge"], replies[split:]):
            if not any(r["kind"] == "answer" and r.get("intent") == "bot_challenge" for r in rs):
                print(f"  not truthful {[r['kind'] for r in rs]}: {text}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
