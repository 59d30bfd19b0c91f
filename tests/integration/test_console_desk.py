"""`bot chat` is also the moderator desk: `desk> MODERATOR_ID [#TICKET] TEXT` lines act on
tickets (a real process, the real model); every other line stays the fan's own."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.conftest import MODEL, REPO

pytestmark = pytest.mark.integration

SCRIPT = [
    "hello",
    "/human",
    "desk> mod1 /claim Alex",
    "desk> mod1 Hi, I am Alex from the team",
    "desk> eve #1 /resolve",  # not in [handoff] moderators
    "desk> oops",  # malformed
    "mod1 is this line mine?",  # no prefix: the fan's, relayed to the desk
    "desk> mod1 #1 /resolve",
    "when is the next episode?",
]


def chat(tmp_path: Path, lines: list[str]) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOT_")}
    env.update(
        BOT_SECRETS_DEV_KEYS_FILE=str(tmp_path / "dev-keys.env"),
        BOT_STORE_URL=f"sqlite:///{tmp_path}/transcripts.db",
        BOT_HANDOFF_MODERATORS="mod1",
    )
    return subprocess.run(
        [sys.executable, "-m", "bot", "--model", str(MODEL), "chat"],
        input="".join(f"{line}\n" for line in lines), capture_output=True, text=True, cwd=REPO, env=env, timeout=300,
    )


def test_a_moderator_claims_replies_and_resolves_in_bot_chat(trained_model: Path, tmp_path: Path) -> None:
    run = chat(tmp_path, SCRIPT)
    assert run.returncode == 0, run.stderr
    lines = [line for line in run.stdout.splitlines() if not line.startswith(" ")]  # first lines only
    after_ticket = lines[lines.index(next(line for line in lines if line.startswith("[to moderators] Ticket #1"))) + 1 :]
    assert after_ticket == [
        "[AI assistant] Alex, a human moderator, has joined. You're talking with a person now, not the AI.",
        "[to moderators] You claimed ticket #1 as Alex.",
        "[human moderator] Alex (human moderator): Hi, I am Alex from the team",
        "[to moderators] Only moderators can act on tickets.",
        "desk: expected desk> MODERATOR_ID [#TICKET] TEXT (the id must be in [handoff] moderators)",
        "[to moderators] #1 fan: mod1 is this line mine?",
        after_ticket[6],  # handoff_resolved to the fan
        "[to moderators] Ticket #1 resolved.",
        after_ticket[8],  # the AI answers again
    ]
    assert after_ticket[6].startswith("[AI assistant]") and "back with the AI" in after_ticket[6]
    assert after_ticket[8].startswith("[AI assistant]") and "help.streamverse.example" in after_ticket[8]
    # A moderator's line is never relayed as the fan's text.
    assert not any("fan: desk>" in line or "Hi, I am Alex" in line for line in lines if line.startswith("[to moderators]"))
