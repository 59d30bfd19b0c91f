"""Where the shared NLU dev sets (`shared/eval`, kept beside the main checkout) are.

One answer for the benchmarks and the tests: `--eval-dir`, else `NLU_EVAL_DIR`, else
`shared/eval` beside this checkout, beside the main checkout of a git worktree, or beside
the local repository this one was cloned from. Missing is an error an operator can fix
(one line, exit 2), never a silent skip: a figure measured on nothing is no figure.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Optional

REPO = Path(__file__).resolve().parent.parent
NEEDED = ("off_topic_dev.txt", "bot_challenge_dev.txt")


def _git(*args: str) -> Optional[str]:
    try:
        done = subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True, check=False, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() or None if done.returncode == 0 else None


def candidates() -> list[Path]:
    """The folders looked at, in order, when neither --eval-dir nor NLU_EVAL_DIR is given."""
    roots = [REPO]
    common = _git("rev-parse", "--path-format=absolute", "--git-common-dir")
    if common:
        roots.append(Path(common).parent)  # a worktree: the main checkout
    origin = _git("config", "--get", "remote.origin.url")
    if origin and not origin.startswith(("http:", "https:", "ssh:", "git@")):
        roots.append(Path(origin.removeprefix("file://")))  # a clone of a local checkout
    return list(dict.fromkeys(root.resolve().parent / "shared" / "eval" for root in roots))


def find(explicit: Optional[Path] = None) -> Optional[Path]:
    """The dev-set folder, or None when no candidate holds the sets."""
    env = os.environ.get("NLU_EVAL_DIR")
    chosen = [explicit] if explicit else [Path(env)] if env else candidates()
    return next((p for p in chosen if all((p / name).is_file() for name in NEEDED)), None)


def resolve(explicit: Optional[Path] = None) -> Path:
    """The dev-set folder; exits 2 with one line saying what to set when there is none."""
    found = find(explicit)
    if found is None:
        looked = [explicit] if explicit else [Path(os.environ["NLU_EVAL_DIR"])] if os.environ.get("NLU_EVAL_DIR") else candidates()
        print(f"error: no NLU dev sets ({', '.join(NEEDED)}) in {', '.join(map(str, looked))}; pass --eval-dir or set NLU_EVAL_DIR", file=sys.stderr)
        raise SystemExit(2)
    return found
