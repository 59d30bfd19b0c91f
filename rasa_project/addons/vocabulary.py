"""The words the model was trained on, to catch messages it has no basis to classify.

Character n-grams let the classifier score even gibberish ("blorp zzkq") with
confidence; a message sharing no word with the training data gets the fallback instead.
The vocabulary is written beside the model at training time, so the two cannot drift.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Iterable

import yaml

_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")


def words(text: str) -> set[str]:
    return set(_WORD.findall(text.lower()))


def vocabulary_file(model_path: Path) -> Path:
    return model_path.with_name(model_path.name + ".vocabulary.json")


def labelled_examples(data_dir: Path) -> Iterable[tuple[str, str]]:
    """(intent, text) of every intent example in the training data."""
    for path in sorted(data_dir.rglob("*.yml")):
        document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        for block in document.get("nlu", []) or []:
            if "intent" not in block:
                continue
            for line in str(block.get("examples", "")).splitlines():
                example = line.strip()
                if example.startswith("- "):
                    yield str(block["intent"]), example[2:]


def training_examples(data_dir: Path) -> Iterable[str]:
    for _, text in labelled_examples(data_dir):
        yield text


def write_vocabulary(data_dir: Path, model_path: Path) -> int:
    known: set[str] = set()
    for example in training_examples(data_dir):
        known |= words(example)
    vocabulary_file(model_path).write_text(json.dumps(sorted(known)))
    return len(known)


def load_vocabulary(model_path: Path) -> frozenset[str]:
    """The trained vocabulary, or an empty set (guard off) for a model trained elsewhere."""
    path = vocabulary_file(model_path)
    return frozenset(json.loads(path.read_text())) if path.is_file() else frozenset()
