"""`bot handoff release N` and `bot forget`'s desk count, as real processes on a real store."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path

from bot.config import AssistantSettings, HandoffSettings
from bot.conversation import ConversationMemory
from bot.core import Bot
from bot.handoff.actions import console_action
from bot.handoff.locations import DeskPost
from bot.handoff.states import Status
from bot.messages import Incoming
from bot.privacy.crypto import MasterKeys
from bot.privacy.pseudonym import Pseudonymizer
from bot.privacy.store import TranscriptStore
from bot.testing.fake_engine import FakeEngine
from tests.integration.conftest import REPO

PSEUDONYM_KEY = "handoff-cli-test-key-0123456789abcdef"


def operator(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bot", *args], capture_output=True, text=True, cwd=REPO, env=env, timeout=120)


def test_release_puts_a_claimed_ticket_back_and_forget_counts_desk_copies(tmp_path: Path) -> None:
    master = MasterKeys.generate()
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOT_")}
    env.update(BOT_PSEUDONYM_KEY=PSEUDONYM_KEY, BOT_MASTER_KEYS=master, BOT_STORE_URL=f"sqlite:///{tmp_path}/t.db",
               BOT_SECRETS_DEV_KEYS_FILE=str(tmp_path / "never-used.env"))
    settings = HandoffSettings(moderators=("mod1",))

    async def seed() -> None:
        store = TranscriptStore.open(env["BOT_STORE_URL"], None, MasterKeys.parse(master), PSEUDONYM_KEY.encode())
        bot = Bot(FakeEngine(), Pseudonymizer(PSEUDONYM_KEY.encode()), AssistantSettings(), ConversationMemory(60), store, handoff=settings)
        await bot.handle(Incoming("slack", "U0ANN", "D1", "/human"))
        await bot.moderate(console_action("mod1", "/claim Alex", None, settings.moderators))
        await bot.handoff.tickets.posted([DeskPost(1, "slack", "CDESK", "1700000000.000100")], datetime(2026, 1, 1))
        await bot.drain()
        await store.aclose()

    asyncio.run(seed())
    released = operator("handoff", "release", "1", env=env)
    assert released.returncode == 0, released.stderr
    assert "back in the queue" in released.stdout
    again = operator("handoff", "release", "1", env=env)
    assert again.returncode == 2 and "only a claimed ticket" in again.stderr and "\n" not in again.stderr.strip()

    async def check() -> None:
        store = TranscriptStore.open(env["BOT_STORE_URL"], None, MasterKeys.parse(master), PSEUDONYM_KEY.encode())
        bot = Bot(FakeEngine(), Pseudonymizer(PSEUDONYM_KEY.encode()), AssistantSettings(), ConversationMemory(60), store, handoff=settings)
        ticket = await bot.handoff.tickets.get(1)
        assert ticket is not None and ticket.status is Status.OPEN and ticket.moderator is None
        assert "ticket_released" in [e["action"] for e in store.audit_log.entries()]
        await store.aclose()

    asyncio.run(check())
    forgotten = operator("forget", "--user", "slack:U0ANN", env=env)
    assert forgotten.returncode == 0, forgotten.stderr
    assert "1 message(s) the bot posted about this fan's tickets are queued for deletion at the moderator desk" in forgotten.stdout
