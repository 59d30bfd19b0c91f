"""Trains the Rasa model when it is missing or its inputs changed since it was built.

    cd rasa_project && .venv/bin/python -m addons.train [--project DIR] [--model PATH] [--force]

prints `trained` or `up to date`; exit 1 with the end of Rasa's output when `rasa train` fails,
exit 2 (one line) when the project is not a Rasa project. The fingerprint is a hash of the files
Rasa trains from, written beside the model with the vocabulary and the examples' embeddings
(the out-of-domain gate's inputs); Rasa's own cache (`.rasa/cache`) then skips unchanged
components inside a training.
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
from pathlib import Path
from typing import Optional, Sequence

from addons.ood import embeddings_file, write_embeddings
from addons.vocabulary import labelled_examples, vocabulary_file, write_vocabulary
from addons.quiet import quiet_environment

TRAINING_INPUTS = ("config.yml", "domain.yml", "data")


class TrainingError(RuntimeError):
    """`rasa train` failed; the message says where to look."""


class NotAProjectError(TrainingError):
    """The folder lacks what Rasa trains from; the operator must point at the right one."""


def input_fingerprint(project_dir: Path) -> str:
    digest = hashlib.sha256()
    for entry in TRAINING_INPUTS:
        root = project_dir / entry
        files = sorted(root.rglob("*.yml")) if root.is_dir() else [root]
        for path in files:
            digest.update(str(path.relative_to(project_dir)).encode())
            digest.update(b"\0")
            digest.update(path.read_bytes())
            digest.update(b"\0")
    return digest.hexdigest()


def fingerprint_file(model_path: Path) -> Path:
    return model_path.with_name(model_path.name + ".fingerprint")


def is_stale(project_dir: Path, model_path: Path) -> bool:
    marker = fingerprint_file(model_path)
    beside = (marker, vocabulary_file(model_path), embeddings_file(model_path))
    if not model_path.is_file() or not all(path.is_file() for path in beside):
        return True
    return marker.read_text().strip() != input_fingerprint(project_dir)


def train(project_dir: Path, model_path: Path, force: bool = False) -> bool:
    """Trains into `model_path` unless it is fresh; returns whether it trained."""
    missing = [entry for entry in TRAINING_INPUTS if not (project_dir / entry).exists()]
    if missing:
        raise NotAProjectError(f"{project_dir} is not a Rasa project: missing {', '.join(missing)}")
    if not force and not is_stale(project_dir, model_path):
        return False
    fingerprint = input_fingerprint(project_dir)
    model_path = model_path.resolve()
    model_dir = model_path.parent.resolve()
    model_dir.mkdir(parents=True, exist_ok=True)
    name = model_path.name.removesuffix(".tar.gz")
    command = [sys.executable, "-m", "rasa", "train", "--out", str(model_dir), "--fixed-model-name", name]
    completed = subprocess.run(command, cwd=project_dir, env=quiet_environment(), capture_output=True, text=True)
    if completed.returncode != 0 or not model_path.is_file():
        tail = "\n".join((completed.stdout + completed.stderr).strip().splitlines()[-15:])
        raise TrainingError(f"rasa train failed (exit {completed.returncode}):\n{tail}")
    write_vocabulary(project_dir / "data", model_path)
    write_embeddings(labelled_examples(project_dir / "data"), model_path)
    fingerprint_file(model_path).write_text(fingerprint + "\n")
    return True


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m addons.train", description="Trains the model when stale.")
    parser.add_argument("--project", type=Path, default=Path("."), help="the Rasa project folder (default: .)")
    parser.add_argument("--model", type=Path, default=Path("models/fan.tar.gz"), help="where the model goes (default: models/fan.tar.gz)")
    parser.add_argument("--force", action="store_true", help="train even when the model is up to date")
    args = parser.parse_args(argv)
    try:
        trained = train(args.project, args.model, force=args.force)
    except NotAProjectError as error:
        print(f"train: {error}", file=sys.stderr)
        return 2
    except TrainingError as error:
        print(f"train: {error}", file=sys.stderr)
        return 1
    print("trained" if trained else "up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
