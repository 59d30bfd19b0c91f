"""False detections of the language guard on English text (bot/language.py).

Every line below is English, so each message the guard calls another language would get a
"I only understand English" reply instead of an answer. Prints the rate per set; figures only.

    .venv/bin/python bench/language_eval.py [--eval-dir ../shared/eval]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bot.engine.vocabulary import labelled_examples  # noqa: E402
from bot.language import detect  # noqa: E402
from bot.normalize import normalize  # noqa: E402


def rate(name: str, texts: list[str]) -> None:
    found = Counter(code for code in (detect(normalize(t)) for t in texts) if code is not None)
    wrong = sum(found.values())
    print(f"{name:<28} {len(texts):5d} English lines  false detections {wrong:3d}  rate {wrong / max(len(texts), 1):.4f}  {dict(found)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--eval-dir", type=Path, default=REPO.parent / "shared" / "eval")
    args = parser.parse_args()
    training = [t for intent, t in labelled_examples(REPO / "rasa_project" / "data") if intent != "out_of_scope"]
    rate("in-domain training data", training)
    for path in (REPO / "tests" / "data" / "nlu_registers.jsonl", REPO / "bench" / "data" / "nlu_own_heldout.jsonl"):
        rate(path.name, [json.loads(line)["text"] for line in path.read_text(encoding="utf-8").splitlines() if line.strip()])
    for name in ("off_topic_dev.txt", "bot_challenge_dev.txt"):
        path = args.eval_dir / name
        if path.is_file():
            rate(name, [l.strip() for l in path.read_text(encoding="utf-8").splitlines() if l.strip()])


if __name__ == "__main__":
    main()
