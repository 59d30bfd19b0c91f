"""A broken store is noticed (issue 11 item 7): a deployment never starts on a new empty
store, `bot db init` creates one deliberately, and a store file removed under the running
bot is reported as an error once."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.privacy.crypto import MasterKeys
from bot.privacy.health import watch_health
from bot.privacy.store import StoreMissingError, TranscriptStore
from bot.testing.privacy_contacts import PRIVACY_CONTACTS
from tests.integration.conftest import MODEL, REPO

pytestmark = pytest.mark.integration


def run_bot(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bot", *args], capture_output=True, text=True, cwd=REPO, env=env, timeout=120)


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("BOT_", "SLACK_", "DISCORD_"))}
    base.update(
        BOT_PSEUDONYM_KEY="health-test-pseudonym-key-0123456789",
        **PRIVACY_CONTACTS,
        BOT_MASTER_KEYS=MasterKeys.generate(),
        BOT_STORE_URL=f"sqlite:///{tmp_path}/data/transcripts.db",
        BOT_SECRETS_DEV_KEYS_FILE=str(tmp_path / "dev.env"),
    )
    return base


def test_a_deployment_and_operator_commands_never_create_a_store(env: dict[str, str], tmp_path: Path, trained_model: Path) -> None:
    database = tmp_path / "data" / "transcripts.db"
    deployment = {**env, "SLACK_BOT_TOKEN": "xoxb-x", "SLACK_APP_TOKEN": "xapp-x", "SLACK_API_BASE_URL": "http://127.0.0.1:9/api/"}
    for args, environment in ((("--model", str(MODEL), "run"), deployment), (("forget", "--user", "slack:U1"), env), (("audit", "verify"), env)):
        refused = run_bot(*args, env=environment)
        assert refused.returncode == 2, (args, refused.stderr)
        assert "no store at sqlite database" in refused.stderr and "bot db init" in refused.stderr
        assert refused.stderr.strip().count("\n") == 0
        assert not database.exists()
    created = run_bot("db", "init", env=env)
    assert created.returncode == 0 and "created a new store" in created.stderr and database.is_file()
    again = run_bot("db", "init", env=env)
    assert again.returncode == 2 and "already exists" in again.stderr
    assert run_bot("audit", "verify", env=env).returncode == 0


async def test_a_removed_store_file_is_reported_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    master = MasterKeys.parse(MasterKeys.generate())
    store = TranscriptStore.open(f"sqlite:///{tmp_path}/transcripts.db", None, master)
    assert await store.check_health() is None and store.healthy
    for suffix in ("", "-wal", "-shm"):
        Path(f"{tmp_path}/transcripts.db{suffix}").unlink(missing_ok=True)
    caplog.set_level(logging.INFO)
    import asyncio

    watcher = asyncio.create_task(watch_health(store, every_seconds=0.05))
    await asyncio.sleep(0.3)
    watcher.cancel()
    assert not store.healthy and "was removed" in (store.problem or "")
    errors = [r for r in caplog.records if r.levelno == logging.ERROR and "store is not usable" in r.getMessage()]
    assert len(errors) == 1
    assert not Path(f"{tmp_path}/transcripts.db").exists()  # nothing recreated it, empty
    from bot.config import HandoffSettings
    from bot.conversation import ConversationMemory
    from bot.core import STORE_DOWN_TEXT, Bot
    from bot.messages import Incoming, Kind
    from bot.privacy.pseudonym import Pseudonymizer
    from bot.testing.fake_engine import FakeEngine

    bot = Bot(FakeEngine(), Pseudonymizer(b"k" * 32), __import__("bot.config").config.AssistantSettings(), ConversationMemory(60), store,
              handoff=HandoffSettings(moderators=("M1",)))
    for text in ("/human", "hello", "/my-data"):
        replies = await bot.handle(Incoming("slack", "U1", "D1", text))
        assert replies[-1].kind is Kind.ERROR and replies[-1].text == STORE_DOWN_TEXT, text  # honest, no ticket promised
    await store.aclose()


async def test_open_without_create_refuses_an_empty_database(tmp_path: Path) -> None:
    master = MasterKeys.parse(MasterKeys.generate())
    (tmp_path / "empty.db").touch()
    with pytest.raises(StoreMissingError):
        TranscriptStore.open(f"sqlite:///{tmp_path}/empty.db", None, master, create=False)
    with pytest.raises(StoreMissingError):
        TranscriptStore.open(f"sqlite:///{tmp_path}/absent.db", None, master, create=False)
    assert not (tmp_path / "absent.db").exists()
