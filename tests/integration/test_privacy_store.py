"""The privacy guarantees, on a real SQLite file and a real PostgreSQL server.

`.ci/run` starts PostgreSQL and sets BOT_TEST_POSTGRES_URL; locally the PostgreSQL half
is skipped without it (and fails in CI, so it can never be skipped silently there).
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select, text, update
from sqlalchemy.engine import make_url

from bot.config import AssistantSettings
from bot.conversation import ConversationMemory
from bot.core import Bot
from bot.messages import Incoming
from bot.privacy import crypto
from bot.privacy.crypto import MasterKeyError, MasterKeys
from bot.privacy.pseudonym import Pseudonymizer
from bot.privacy.schema import audit_log, data_keys, keys, transcripts, turns
from bot.privacy.store import TranscriptStore
from bot.testing.fake_engine import FakeEngine
from tests.integration.databases import database_url  # noqa: F401  (the fixture, re-exported for other modules)

KEY = b"store-test-pseudonym-key-0123456789abcdef"
CANARIES = [
    "zebracanary",
    "fan.canary@example.com",
    "+44 20 7946 0958",
    "4111 1111 1111 1111",
    "U0CANARYID",
    "CanaryDisplayName",
]
SCRIPT = [
    "hello",
    "my refund for the zebracanary plan, mail me at fan.canary@example.com",
    "or call +44 20 7946 0958, card 4111 1111 1111 1111",
    "I'm CanaryDisplayName by the way",
]


@pytest.fixture
def master() -> MasterKeys:
    return MasterKeys.parse(MasterKeys.generate())


def new_bot(store: TranscriptStore, engine: FakeEngine | None = None) -> Bot:
    return Bot(engine or FakeEngine(), Pseudonymizer(KEY), AssistantSettings(), ConversationMemory(1800), store)


def fan_pseudonym(user: str = "U0CANARYID") -> str:
    return Pseudonymizer(KEY).fan("slack", user)


async def talk(bot: Bot, user: str = "U0CANARYID") -> None:
    for line in SCRIPT:
        await bot.handle(Incoming("slack", user, "D1", line))
    await bot.drain()  # the tests below also read the database directly


def raw_bytes(url: str) -> bytes:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        base = Path(parsed.database or "")
        return b"".join(p.read_bytes() for p in [base, Path(f"{base}-wal")] if p.exists())
    pg_dump = shutil.which("pg_dump")
    assert pg_dump, "pg_dump is needed for the PostgreSQL at-rest scan"
    return subprocess.run([pg_dump, url], capture_output=True, check=True).stdout


async def test_at_rest_scan_finds_no_canary_or_personal_data(database_url: str, master: MasterKeys) -> None:
    store = TranscriptStore.open(database_url, None, master)
    await talk(new_bot(store))
    assert await store.count_turns(fan_pseudonym()) >= 8  # it did store the conversation
    await store.aclose()
    dump = raw_bytes(database_url)
    assert len(dump) > 1000
    for canary in CANARIES:
        assert canary.encode() not in dump, canary
        assert canary.replace(" ", "").encode() not in dump, canary


async def test_export_holds_redacted_text_only(database_url: str, master: MasterKeys) -> None:
    store = TranscriptStore.open(database_url, None, master)
    bot = new_bot(store)
    await talk(bot)
    export = (await bot.handle(Incoming("slack", "U0CANARYID", "D1", "/my-data")))[0]
    assert export.kind.value == "data_export"
    assert "[EMAIL]" in export.text and "[PHONE]" in export.text and "[CARD]" in export.text
    assert "zebracanary" in export.text  # a plain word is kept; only personal data is redacted
    assert "fan.canary@example.com" not in export.text and "U0CANARYID" not in export.text
    await store.aclose()


async def test_erasure_is_complete_and_earlier_ciphertext_stays_unreadable(database_url: str, master: MasterKeys) -> None:
    store = TranscriptStore.open(database_url, None, master)
    bot = new_bot(store)
    await talk(bot)
    await talk(bot, user="U0OTHERFAN")
    pseudonym = fan_pseudonym()
    with store.engine.connect() as connection:
        saved = [row.body for row in connection.execute(select(turns.c.body).where(turns.c.fan == pseudonym))]
    assert saved
    await bot.handle(Incoming("slack", "U0CANARYID", "D1", "/privacy off"))
    done = await bot.handle(Incoming("slack", "U0CANARYID", "D1", "/forget-me confirm"))
    assert [r.kind.value for r in done] == ["erasure_done"]

    with store.engine.connect() as connection:
        for table in [*transcripts.sorted_tables, *keys.sorted_tables]:
            for row in connection.execute(select(table)):
                assert pseudonym not in " ".join(str(value) for value in row), table.name
        remaining = [master.unwrap(row.wrapped) for row in connection.execute(select(data_keys.c.wrapped))]
    assert remaining  # the other fan's key is still there, and opens none of the erased rows
    for body in saved:
        for key in remaining:
            with pytest.raises(crypto.CiphertextError):
                crypto.decrypt(key, body)
    assert (await store.export(pseudonym))["turns"] == []
    assert (await store.erase(pseudonym)).records == 0  # idempotent
    assert store.audit_log.verify().ok
    assert pseudonym not in str(store.audit_log.entries())
    await store.aclose()


async def test_after_erasure_the_next_message_is_a_first_contact(database_url: str, master: MasterKeys) -> None:
    store = TranscriptStore.open(database_url, None, master)
    bot = new_bot(store)
    await talk(bot)
    await bot.handle(Incoming("slack", "U0CANARYID", "D1", "/forget-me confirm"))
    again = await bot.handle(Incoming("slack", "U0CANARYID", "D1", "hello"))
    assert again[0].kind.value == "disclosure"
    await store.aclose()


async def test_rotation_keeps_data_readable_and_the_old_key_can_go(database_url: str) -> None:
    old, new = MasterKeys.generate(), MasterKeys.generate()
    store = TranscriptStore.open(database_url, None, MasterKeys.parse(old))
    await talk(new_bot(store))
    await store.aclose()
    with create_engine(database_url, future=True).connect() as connection:
        bodies_before = [row.body for row in connection.execute(select(turns.c.body).order_by(turns.c.id))]

    rotating = TranscriptStore.open(database_url, None, MasterKeys.parse(f"{new},{old}"))
    assert await rotating.rotate_keys() == 1
    await rotating.aclose()

    rotated = TranscriptStore.open(database_url, None, MasterKeys.parse(new))  # the old key is gone
    export = await rotated.export(fan_pseudonym())
    assert any("zebracanary" in turn["text"] for turn in export["turns"])
    with rotated.engine.connect() as connection:
        assert [row.body for row in connection.execute(select(turns.c.body).order_by(turns.c.id))] == bodies_before
    assert [entry["action"] for entry in rotated.audit_log.entries()][-2:] == ["key_rotation", "export_served"]
    await rotated.aclose()


async def test_wrong_master_key_stops_start_up_and_touches_nothing(database_url: str, master: MasterKeys) -> None:
    store = TranscriptStore.open(database_url, None, master)
    await talk(new_bot(store))
    count = await store.count_turns()
    await store.aclose()
    before = raw_bytes(database_url) if database_url.startswith("sqlite") else None
    with pytest.raises(MasterKeyError, match="wrong or missing"):
        TranscriptStore.open(database_url, None, MasterKeys.parse(MasterKeys.generate()))
    if before is not None:
        assert raw_bytes(database_url) == before
    reopened = TranscriptStore.open(database_url, None, master)
    assert await reopened.count_turns() == count
    await reopened.aclose()


async def test_corrupted_ciphertext_is_reported_not_fatal(database_url: str, master: MasterKeys) -> None:
    store = TranscriptStore.open(database_url, None, master)
    bot = new_bot(store)
    await talk(bot)
    with store.engine.begin() as connection:
        first = connection.execute(select(turns.c.id).order_by(turns.c.id).limit(1)).scalar()
        connection.execute(update(turns).where(turns.c.id == first).values(body=b"gAAAAAcorrupted"))
    export = await store.export(fan_pseudonym())
    texts = [turn["text"] for turn in export["turns"]]
    assert texts[0] == "[unreadable: corrupted]" and len(texts) > 1 and "zebracanary" in " ".join(texts)
    assert (await bot.handle(Incoming("slack", "U0CANARYID", "D1", "/my-data")))[0].kind.value == "data_export"
    await store.aclose()


async def test_tampered_or_removed_audit_records_are_detected(database_url: str, master: MasterKeys) -> None:
    store = TranscriptStore.open(database_url, None, master)
    for number in range(4):
        await store.audit("ticket_claimed", f"moderator-{number}", {"n": number})
    report = store.audit_log.verify()
    assert report.ok and report.records == 4
    with store.engine.begin() as connection:
        connection.execute(update(audit_log).where(audit_log.c.id == 2).values(detail='{"n":9}'))
    assert "record 2 was changed" in (store.audit_log.verify().problem or "")
    with store.engine.begin() as connection:
        connection.execute(update(audit_log).where(audit_log.c.id == 2).values(detail='{"n":1}'))
        connection.execute(audit_log.delete().where(audit_log.c.id == 3))
    assert "record 3 is missing" in (store.audit_log.verify().problem or "")
    assert not store.audit_log.verify(expected_head="0" * 64).ok
    await store.aclose()


async def test_a_message_racing_an_erasure_leaves_nothing_behind(database_url: str, master: MasterKeys) -> None:
    store = TranscriptStore.open(database_url, None, master)
    engine = FakeEngine()
    bot = new_bot(store, engine)
    await talk(bot)
    entered = asyncio.Event()
    original = engine.respond

    async def slow(pseudonym: str, message: str):  # type: ignore[no-untyped-def]
        entered.set()
        await asyncio.sleep(0.2)
        return await original(pseudonym, message)

    engine.respond = slow  # type: ignore[method-assign]
    message = asyncio.create_task(bot.handle(Incoming("slack", "U0CANARYID", "D1", "refund please")))
    await entered.wait()  # the message is mid-flight when the erasure arrives
    erasure = await bot.handle(Incoming("slack", "U0CANARYID", "D1", "/forget-me confirm"))
    await message
    assert erasure[0].kind.value == "erasure_done"
    assert await store.count_turns(fan_pseudonym()) == 0
    with store.engine.connect() as connection:
        assert connection.execute(select(data_keys).where(data_keys.c.fan == fan_pseudonym())).first() is None
    assert engine.history_of(fan_pseudonym()) is None
    await store.aclose()


async def test_privacy_off_stops_logging_and_survives_a_restart(database_url: str, master: MasterKeys) -> None:
    store = TranscriptStore.open(database_url, None, master)
    bot = new_bot(store)
    await bot.handle(Incoming("slack", "U1", "D1", "hello"))
    off = await bot.handle(Incoming("slack", "U1", "D1", "/privacy off"))
    assert off[0].kind.value == "privacy_notice"
    stored = await store.count_turns(fan_pseudonym("U1"))
    await store.aclose()

    restarted = TranscriptStore.open(database_url, None, master)
    bot = new_bot(restarted)
    await bot.handle(Incoming("slack", "U1", "D1", "refund please"))
    assert await restarted.count_turns(fan_pseudonym("U1")) == stored
    notice = await bot.handle(Incoming("slack", "U1", "D1", "/privacy"))
    assert "logging is off" in notice[-1].text
    await bot.handle(Incoming("slack", "U1", "D1", "/privacy on"))
    await bot.handle(Incoming("slack", "U1", "D1", "refund please"))
    assert await restarted.count_turns(fan_pseudonym("U1")) == stored + 2
    await restarted.aclose()


async def test_retention_purge_and_dry_run(database_url: str, master: MasterKeys) -> None:
    from datetime import datetime, timedelta

    store = TranscriptStore.open(database_url, None, master)
    now = [datetime(2026, 1, 1)]
    bot = Bot(FakeEngine(), Pseudonymizer(KEY), AssistantSettings(), ConversationMemory(1800), store, clock=lambda: now[0])
    await bot.handle(Incoming("slack", "U1", "D1", "hello"))  # disclosure + 2 turns, at day 0
    now[0] += timedelta(days=40)
    await bot.handle(Incoming("slack", "U1", "D1", "refund please"))  # 2 turns, at day 40
    cutoff = now[0] - timedelta(days=30)
    assert await store.purge(cutoff, dry_run=True) == 3
    assert await store.count_turns() == 5
    assert await store.purge(cutoff) == 3
    assert await store.count_turns() == 2
    assert store.audit_log.entries()[-1]["action"] == "retention_purge"
    await store.aclose()


async def test_key_table_can_live_in_a_separate_database(tmp_path: Path, master: MasterKeys) -> None:
    transcripts_url, keys_url = f"sqlite:///{tmp_path}/t.db", f"sqlite:///{tmp_path}/keys.db"
    store = TranscriptStore.open(transcripts_url, keys_url, master)
    await talk(new_bot(store))
    await store.aclose()
    with create_engine(transcripts_url, future=True).connect() as connection:
        tables = set(connection.execute(text("select name from sqlite_master where type='table'")).scalars())
    assert "turns" in tables and "data_keys" not in tables
    with create_engine(keys_url, future=True).connect() as connection:
        assert connection.execute(select(data_keys)).first() is not None


async def test_attachments_are_never_stored_only_marked(tmp_path: Path, master: MasterKeys) -> None:
    store = TranscriptStore.open(f"sqlite:///{tmp_path}/t.db", None, master)
    bot = new_bot(store)
    await bot.handle(Incoming("discord", "U1", "D1", "here is my receipt, refund please", attachments=2))
    export = await store.export(Pseudonymizer(KEY).fan("discord", "U1"))
    fan_turns = [turn["text"] for turn in export["turns"] if turn["role"] == "fan"]
    assert fan_turns == ["here is my receipt, refund please [ATTACHMENT] [ATTACHMENT]"]
    await store.aclose()


async def test_a_large_erasure_shreds_at_once_and_removes_rows_in_batches(database_url: str, master: MasterKeys) -> None:
    from datetime import datetime

    from bot.privacy.store import ERASE_BATCH, Turn

    store = TranscriptStore.open(database_url, None, master)
    big, other = fan_pseudonym("U0BIG"), fan_pseudonym("U0OTHER")
    count = 2 * ERASE_BATCH + 17
    await store.append(*[Turn(big, "c", "fan", "message", datetime(2026, 1, 1), f"message {n}") for n in range(count)])
    receipt = await store.erase(big)
    assert receipt.turns == count and receipt.data_keys == 1
    leftover = (await store.export(big))["turns"]
    assert all(turn["text"] == "[unreadable: key erased]" for turn in leftover)  # unreadable from the start
    await store.append(Turn(other, "c", "fan", "message", datetime(2026, 1, 1), "not held up"))
    await store.settle()
    assert await store.count_turns(big) == 0 and await store.count_turns(other) == 1
    await store.aclose()


async def test_a_new_sqlite_store_is_readable_by_its_owner_only(tmp_path: Path, master: MasterKeys) -> None:
    store = TranscriptStore.open(f"sqlite:///{tmp_path}/private/transcripts.db", None, master)
    await talk(new_bot(store))
    await store.aclose()
    for path in (tmp_path / "private").iterdir():
        assert path.stat().st_mode & 0o077 == 0, path.name


async def test_a_message_after_the_store_closed_fails_at_once_rather_than_waiting_forever(database_url: str, master: MasterKeys) -> None:
    """Grouped reads and writes (a burst's loads, saves and /privacy reads) are queued at the
    end of the loop's iteration: a store closed by then must fail them, not leave them waiting."""
    store = TranscriptStore.open(database_url, None, master)
    bot = new_bot(store)
    await store.aclose()
    with pytest.raises(RuntimeError, match="shutdown"):
        await asyncio.wait_for(bot.handle(Incoming("slack", "U0CLOSED", "D1", "hello")), 30)  # a guard against a hang, not a measure
