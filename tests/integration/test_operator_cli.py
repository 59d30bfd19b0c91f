"""The operator's store commands as a real process: export, forget, audit, rotate, purge."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import jsonschema
import pytest
from sqlalchemy import insert

from bot.config import AssistantSettings
from bot.conversation import ConversationMemory
from bot.core import Bot
from bot.messages import Incoming
from bot.privacy import events as ev
from bot.privacy.crypto import MasterKeys
from bot.privacy.pseudonym import Pseudonymizer
from bot.privacy.schema import ratings
from bot.privacy.store import TranscriptStore
from bot.testing.fake_engine import FakeEngine
from tests.integration.conftest import REPO

pytestmark = pytest.mark.integration
PSEUDONYM_KEY = "operator-cli-test-key-0123456789abcdef"


def operator(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bot", *args], capture_output=True, text=True, cwd=REPO, env=env, timeout=120)


@pytest.fixture
def deployment(tmp_path: Path) -> dict[str, str]:
    old = MasterKeys.generate()
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOT_")}
    env.update(
        BOT_PSEUDONYM_KEY=PSEUDONYM_KEY,
        BOT_MASTER_KEYS=old,
        BOT_STORE_URL=f"sqlite:///{tmp_path}/transcripts.db",
        BOT_SECRETS_DEV_KEYS_FILE=str(tmp_path / "never-used.env"),
    )

    async def seed() -> None:
        store = TranscriptStore.open(env["BOT_STORE_URL"], None, MasterKeys.parse(old), PSEUDONYM_KEY.encode())
        bot = Bot(FakeEngine(), Pseudonymizer(PSEUDONYM_KEY.encode()), AssistantSettings(), ConversationMemory(60), store)
        for text in ("hello", "refund for order 1234, mail me at ann@example.com"):
            await bot.handle(Incoming("slack", "U0ANN", "D1", text))
        await store.aclose()

    asyncio.run(seed())
    return env


def test_export_forget_audit_rotate_and_purge(deployment: dict[str, str], tmp_path: Path) -> None:
    exported = operator("export", "--user", "slack:U0ANN", env=deployment)
    assert exported.returncode == 0, exported.stderr
    assert "[EMAIL]" in exported.stdout and "ann@example.com" not in exported.stdout

    dry = operator("purge", "--dry-run", env=deployment)
    assert dry.returncode == 0 and "would delete 0 turn(s), 0 event(s), 0 ticket(s), 0 rating(s)" in dry.stdout

    new = MasterKeys.generate()
    rotated = operator("keys", "rotate", env={**deployment, "BOT_MASTER_KEYS": f"{new},{deployment['BOT_MASTER_KEYS']}"})
    assert rotated.returncode == 0 and "rewrapped 1 data key" in rotated.stderr
    deployment["BOT_MASTER_KEYS"] = new  # the old key is retired

    forgotten = operator("forget", "--user", "slack:U0ANN", env=deployment)
    assert forgotten.returncode == 0 and "erased" in forgotten.stdout
    assert "[EMAIL]" not in operator("export", "--user", "slack:U0ANN", env=deployment).stdout

    verified = operator("audit", "verify", env=deployment)
    assert verified.returncode == 0 and "intact" in verified.stdout
    actions = operator("audit", "show", env=deployment).stdout
    for action in ("export_served", "key_rotation", "erasure_executed"):
        assert action in actions
    assert not (tmp_path / "never-used.env").exists()


def test_purge_reports_what_it_deleted_item_by_item_like_the_dry_run(deployment: dict[str, str]) -> None:
    """The seeded turns, two events and a rating are past a retention of a fraction of a second
    (QA 17b item 1: the real purge said only "deleted N turn(s)")."""
    store = TranscriptStore.open(deployment["BOT_STORE_URL"], None, MasterKeys.parse(deployment["BOT_MASTER_KEYS"]), PSEUDONYM_KEY.encode())
    with store.engine.begin() as connection:  # as the running bot records them
        for reason in ("disclosure", "answer"):
            ev.add(connection, ev.REPLY, time.time() - 60, platform="slack", reason=reason)
        connection.execute(insert(ratings).values(at=time.time() - 60, fan="f" * 64, conversation="c" * 64, platform="slack",
                                                  answer="a1", intent="greet", confidence=0.9, rating="good"))
    asyncio.run(store.aclose())
    deployment["BOT_PRIVACY_RETENTION_DAYS"] = "0.000000001"
    dry = operator("purge", "--dry-run", env=deployment)
    real = operator("purge", env=deployment)
    assert dry.returncode == 0 and real.returncode == 0, dry.stderr + real.stderr
    listed = dry.stdout.split("would delete ")[1].split(" older than")[0]
    assert int(listed.split(" turn(s), ")[0]) > 0 and listed.endswith(" 2 event(s), 0 ticket(s), 1 rating(s)")
    assert f"bot: deleted {listed} older than" in real.stdout
    assert "would delete 0 turn(s)" in operator("purge", "--dry-run", env=deployment).stdout


def test_export_gives_the_operator_the_same_art_13_and_15_facts_as_my_data(deployment: dict[str, str]) -> None:
    """QA 17 item 9: an e-mailed access request answered with `bot export` carries what
    `/my-data` says (about_this_data, what memory holds) and validates against the schema."""
    contacts = {"BOT_PRIVACY_CONTROLLER": "StreamVerse Ops Ltd", "BOT_PRIVACY_CONTACT": "privacy@sv.test", "BOT_PRIVACY_DPO_CONTACT": "dpo@sv.test"}
    exported = operator("export", "--user", "slack:U0ANN", env={**deployment, **contacts})
    assert exported.returncode == 0, exported.stderr
    export = json.loads(exported.stdout)
    jsonschema.validate(export, json.loads((REPO / "docs" / "my-data.schema.json").read_text()), cls=jsonschema.Draft202012Validator)
    assert export["about_this_data"]["controller"] == {"name": "StreamVerse Ops Ltd", "contact": "privacy@sv.test"}
    assert export["about_this_data"]["data_protection_officer"] == {"contact": "dpo@sv.test"}
    assert "cannot include what a running process holds" in export["held_in_memory"]["dialogue_history"]
    assert export["transcript_logging"] == "on" and export["turns"]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"BOT_MASTER_KEYS": MasterKeys.generate()}, "does not open the stored data keys"),
        ({"BOT_MASTER_KEYS": "not-a-key"}, "key 1 is not a Fernet key"),
        ({"BOT_STORE_URL": "mysql://db/x"}, "store.url"),
    ],
)
def test_bad_keys_and_urls_are_one_line_errors(deployment: dict[str, str], change: dict[str, str], expected: str) -> None:
    run = operator("export", "--user", "slack:U0ANN", env={**deployment, **change})
    assert run.returncode == 2
    assert expected in run.stderr and run.stderr.strip().count("\n") == 0


def test_user_must_name_the_platform(deployment: dict[str, str]) -> None:
    run = operator("forget", "--user", "U0ANN", env=deployment)
    assert run.returncode == 2 and "PLATFORM:ID" in run.stderr


def test_handoff_list_shows_the_queue_without_identities(deployment: dict[str, str]) -> None:
    async def open_ticket() -> None:
        from bot.config import HandoffSettings

        store = TranscriptStore.open(deployment["BOT_STORE_URL"], None, MasterKeys.parse(deployment["BOT_MASTER_KEYS"]), PSEUDONYM_KEY.encode())
        bot = Bot(FakeEngine(), Pseudonymizer(PSEUDONYM_KEY.encode()), AssistantSettings(), ConversationMemory(60), store,
                  handoff=HandoffSettings(moderators=("mod1",)))
        await bot.handle(Incoming("discord", "U0BOB", "D9", "/human"))
        await store.aclose()

    asyncio.run(open_ticket())
    listed = operator("handoff", "list", env=deployment)
    assert listed.returncode == 0, listed.stderr
    assert "open" in listed.stdout and "discord" in listed.stdout and "asked" in listed.stdout
    assert "U0BOB" not in listed.stdout and "1 ticket(s)" in listed.stderr
