"""`/privacy off` is true during a handoff (issue 10 item 4): the notice says what a handoff
keeps, and the store does exactly that: the relayed messages and the moderator's replies
are kept (redacted, encrypted) while the ticket is open and are gone, down to the bytes of
the database files, once it closes; the ticket's metadata stays."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.engine import make_url

from bot.config import AssistantSettings, HandoffSettings
from bot.conversation import ConversationMemory
from bot.core import Bot
from bot.messages import Incoming, Kind
from bot.privacy.crypto import MasterKeys
from bot.privacy.pseudonym import Pseudonymizer
from bot.privacy.schema import tickets, turns
from bot.privacy.store import TranscriptStore
from bot.testing.fake_engine import FakeEngine
from connectors.console import parse_desk_line
from tests.integration.test_privacy_store import database_url, master, raw_bytes  # noqa: F401  (fixtures)

pytestmark = pytest.mark.integration
KEY = b"privacy-off-handoff-key-0123456789abcdef"


def files(url: str) -> bytes:
    """SQLite: the database, WAL and shared-memory files; PostgreSQL: a dump of live rows."""
    if url.startswith("sqlite"):
        base = Path(make_url(url).database or "")
        return b"".join(p.read_bytes() for p in (base, Path(f"{base}-wal"), Path(f"{base}-shm")) if p.exists())
    return raw_bytes(url)


@pytest.mark.parametrize("close", ["/resolve", "fan cancels"])
async def test_a_handoff_with_privacy_off_keeps_the_relay_only_until_the_ticket_closes(
    database_url: str, master: MasterKeys, close: str  # noqa: F811
) -> None:
    store = TranscriptStore.open(database_url, None, master, KEY)
    bot = Bot(FakeEngine(), Pseudonymizer(KEY), AssistantSettings(), ConversationMemory(1800), store,
              handoff=HandoffSettings(moderators=("M1",)))
    fan = Pseudonymizer(KEY).fan("slack", "U0PRIV")

    async def say(text: str) -> list:  # type: ignore[type-arg]
        return await bot.handle(Incoming("slack", "U0PRIV", "D1", text))

    async def desk(line: str) -> list:  # type: ignore[type-arg]
        action = parse_desk_line(line, ("M1",))
        assert action is not None
        return await bot.moderate(action)

    notice = (await say("/privacy off"))[-1]
    assert notice.kind is Kind.PRIVACY_NOTICE
    assert "deleted as soon as the ticket closes" in notice.text and "kept" in notice.text
    await say("hello there")  # not a handoff: not kept at all
    await say("/human")
    await say("my order never arrived, call me")
    await desk("M1 /claim Alex")
    await desk("M1 I can see the order, give me a minute")
    await bot.drain()
    with store.engine.connect() as connection:
        kept = connection.execute(select(turns.c.kind, turns.c.body).where(turns.c.fan == fan)).all()
    assert sorted(row.kind for row in kept) == ["handoff_relay", "moderator_reply"]  # only the handoff, while open
    bodies = [row.body for row in kept]
    assert all(body in files(database_url) for body in bodies) or database_url.startswith("postgresql")

    if close == "/resolve":
        await desk("M1 /resolve")
    else:
        await say("/human cancel")
    await bot.drain()
    await store.settle()
    with store.engine.connect() as connection:
        assert connection.execute(select(turns.c.id).where(turns.c.fan == fan)).first() is None
        ticket = connection.execute(select(tickets.c.status, tickets.c.reason).where(tickets.c.fan == fan)).one()
    assert ticket.status in ("resolved", "cancelled") and ticket.reason == "asked"  # the metadata stays
    stored = files(database_url)
    for body in bodies:
        assert body not in stored
    exported = await store.export(fan)
    assert exported["turns"] == [] and len(exported["tickets"]) == 1
    await store.aclose()
