"""False and true detections of the language guard (bot/language.py).

False: every line of the English sets below (training data, register set, own held-out, the
shared dev sets) is English, so each one the guard calls another language would get "I only
understand English" instead of an answer. True: our own short fan messages in Spanish,
Portuguese, French, German and Japanese (bench/data/language_own.tsv, 2-9 words), each of which
should be caught, in its own language. Prints the rates per set; figures only.

    .venv/bin/python bench/language_eval.py [--eval-dir DIR]   (found as bench/eval_dir.py says; exit 2 when missing)
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

sys.path.insert(0, str(REPO / "rasa_project"))
# The training data's reader, as training uses it (plain Python and PyYAML: no Rasa imported).
from addons.vocabulary import labelled_examples  # noqa: E402

from bot.language import detect  # noqa: E402
from bot.normalize import normalize  # noqa: E402

sys.path.insert(0, str(REPO / "bench"))
from eval_dir import resolve  # noqa: E402


def rate(name: str, texts: list[str]) -> None:
    found = Counter(code for code in (detect(normalize(t)) for t in texts) if code is not None)
    for text in texts:
        if name != "all English lines above" and detect(normalize(text)) is not None:
            print(f"    false ({detect(normalize(text))}): {text}")
    wrong = sum(found.values())
    print(f"{name:<28} {len(texts):5d} English lines  false detections {wrong:3d}  rate {wrong / max(len(texts), 1):.4f}  {dict(found)}")


def caught(path: Path) -> None:
    rows = [line.split("\t", 1) for line in path.read_text(encoding="utf-8").splitlines() if line.strip() and not line.startswith("#")]
    by_language: dict[str, list[bool]] = {}
    for language, text in rows:
        by_language.setdefault(language, []).append(detect(normalize(text)) == language)
    total = sum(sum(v) for v in by_language.values())
    per = "  ".join(f"{code} {sum(v)}/{len(v)}" for code, v in by_language.items())
    print(f"{'own foreign messages':<28} {len(rows):5d} lines  detected in their language {total:3d}  rate {total / max(len(rows), 1):.4f}  {per}")
    for language, text in rows:
        if detect(normalize(text)) != language:
            print(f"    missed ({language}): {text}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--eval-dir", type=Path, help="folder of the dev sets (default: see bench/eval_dir.py)")
    args = parser.parse_args()
    eval_dir = resolve(args.eval_dir)  # before any work: a missing folder is an error, not a skip
    english: list[str] = []
    training = [t for intent, t in labelled_examples(REPO / "rasa_project" / "data") if intent != "out_of_scope"]
    rate("in-domain training data", training)
    english += training
    for path in (REPO / "tests" / "data" / "nlu_registers.jsonl", REPO / "bench" / "data" / "nlu_own_heldout.jsonl"):
        texts = [json.loads(line)["text"] for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        rate(path.name, texts)
        english += texts
    for name in ("off_topic_dev.txt", "bot_challenge_dev.txt"):
        texts = [line.strip() for line in (eval_dir / name).read_text(encoding="utf-8").splitlines() if line.strip()]
        rate(name, texts)
        english += texts
    rate("all English lines above", english)
    caught(REPO / "bench" / "data" / "language_own.tsv")


if __name__ == "__main__":
    main()
