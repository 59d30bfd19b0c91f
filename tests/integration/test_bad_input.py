"""Bad input loses nothing (issue 11 items 4 and 9): a real `bot replay` skips each bad
line by number and goes on; one fan's unencodable text never fails other fans' writes."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.messages import Incoming
from bot.privacy.crypto import MasterKeys
from bot.privacy.store import TranscriptStore, Turn
from tests.integration.conftest import MODEL, REPO
from tests.integration.test_privacy_store import database_url, master, new_bot  # noqa: F401  (fixtures)

pytestmark = pytest.mark.integration

BAD_LINES = [
    (b'{"user": "ann", "text": "caf\xe9 \xff"}', "not valid UTF-8"),
    (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    ('{"moderator": "m1", "ticket": "\u00b2", "text": "hi"}'.encode(), "ticket"),
    (b'{"user": "\\ud800", "text": "hello"}', "lone surrogate"),
]


def test_replay_skips_each_bad_line_by_number_and_plays_the_rest(trained_model: Path, tmp_path: Path) -> None:
    good = b'{"user": "bob", "text": "hello"}'
    script = tmp_path / "script.jsonl"
    script.write_bytes(b"\n".join([good, *(line for line, _ in BAD_LINES), b'{"user": "eve", "text": "hi \\ud800 there"}', good]) + b"\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOT_")}
    env.update(BOT_SECRETS_DEV_KEYS_FILE=str(tmp_path / "dev.env"))
    run = subprocess.run(
        [sys.executable, "-m", "bot", "--model", str(MODEL), "replay", str(script)],
        capture_output=True, cwd=REPO, env=env, timeout=300,
    )
    stderr = run.stderr.decode()
    assert run.returncode == 1, stderr
    assert "Traceback" not in stderr
    for number, (_, reason) in enumerate(BAD_LINES, start=2):
        assert f"line {number}:" in stderr and reason in stderr.split(f"line {number}:")[1].splitlines()[0], stderr
    assert f"{len(BAD_LINES)} malformed line(s) skipped" in stderr
    users = [json.loads(line)["user"] for line in run.stdout.decode().splitlines()]
    assert users.count("bob") >= 3 and "eve" in users  # before, after, and the repaired text were played


async def test_a_lone_surrogate_fails_no_other_fans_write_in_the_same_group(database_url: str, master: MasterKeys) -> None:  # noqa: F811
    store = TranscriptStore.open(database_url, None, master)
    at = __import__("datetime").datetime.utcnow()
    good = [Turn(f"{n:064d}", "c" * 64, "fan", "message", at, f"fine {n}") for n in range(29)]
    bad = Turn("f" * 64, "c" * 64, "fan", "message", at, "broken \ud800")  # bypasses the edge on purpose
    writes = [store.submit(turn) for turn in [*good[:15], bad, *good[15:]]]  # one group: queued together
    results = await asyncio.gather(*writes, return_exceptions=True)
    assert [isinstance(result, Exception) for result in results].count(True) == 1
    assert isinstance(results[15], Exception)
    assert await store.count_turns() == 29
    await store.aclose()


async def test_the_edge_repairs_lone_surrogates_so_the_turn_is_kept(database_url: str, master: MasterKeys) -> None:  # noqa: F811
    store = TranscriptStore.open(database_url, None, master)
    bot = new_bot(store)
    replies = await bot.handle(Incoming("slack", "U0SURROGATE", "D1", "hello \ud800 there"))
    assert replies
    await bot.drain()
    assert await store.count_turns() >= 2  # the fan's message and the replies were stored
    exported = json.dumps(await store.export(next(iter(await _fans(store)))), ensure_ascii=False)
    assert "hello \ufffd there" in exported
    await store.aclose()


async def _fans(store: TranscriptStore) -> set[str]:
    from sqlalchemy import select

    from bot.privacy.schema import turns

    def work() -> set[str]:
        with store.engine.connect() as connection:
            return set(connection.execute(select(turns.c.fan)).scalars())

    return await store.run(work)
