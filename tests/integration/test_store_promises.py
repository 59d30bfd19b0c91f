"""Issue 10 items 3, 6, 7 and 8 through the real stores (SQLite and PostgreSQL) and the
real `bot` process: export and erasure cover the same data, operator erasure cannot
silently miss a fan, keys are checked before any migration, the audit chain's head check
and concurrent appends, and erasures finished after a crash.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import create_engine, func, insert, select, text

from bot.config import AssistantSettings, HandoffSettings
from bot.conversation import ConversationMemory
from bot.core import Bot
from bot.messages import Incoming
from bot.privacy.audit import AuditLog
from bot.privacy.crypto import MasterKeyError, MasterKeys
from bot.privacy.migrate import MIGRATIONS
from bot.privacy.pseudonym import Pseudonymizer
from bot.privacy.schema import audit_log, data_keys, erasures, tickets, turns
from bot.privacy.store import KeyMismatchError, TranscriptStore
from bot.testing.fake_engine import FakeEngine
from connectors.launch import ConsoleDeskInput
from connectors.router import Router
from tests.integration.conftest import REPO
from tests.integration.test_privacy_store import database_url, master  # noqa: F401  (fixtures)

pytestmark = pytest.mark.integration
KEY = b"store-promises-pseudonym-key-0123456789"


def new_bot(store: TranscriptStore) -> Bot:
    return Bot(
        FakeEngine(), Pseudonymizer(KEY), AssistantSettings(), ConversationMemory(1800), store,
        handoff=HandoffSettings(moderators=("M1",)),
    )


def fan(user: str = "U0ANN") -> str:
    return Pseudonymizer(KEY).fan("slack", user)


async def desk(bot: Bot, line: str) -> None:
    action = ConsoleDeskInput(Router(), bot.handoff.settings.moderators).parse(line)
    assert action is not None
    await bot.moderate(action)


# Item 3: one definition of everything about a fan ---------------------------------------


async def test_export_holds_the_ticket_and_erasure_deletes_every_exported_part(database_url: str, master: MasterKeys) -> None:
    store = TranscriptStore.open(database_url, None, master, KEY)
    bot = new_bot(store)
    for line in ("hello", "/human"):
        await bot.handle(Incoming("slack", "U0ANN", "D1", line))
    await desk(bot, "M1 /claim Alex")
    await desk(bot, "M1 thanks, looking into it")
    await desk(bot, "M1 /resolve")
    await bot.drain()

    exported = (await store.export(fan()))
    [ticket] = exported["tickets"]
    assert ticket["status"] == "resolved" and ticket["reason"] == "asked" and ticket["moderator"] == "Alex"
    assert ticket["opened_at"] and ticket["claimed_at"] and ticket["closed_at"]
    my_data = (await bot.handle(Incoming("slack", "U0ANN", "D1", "/my-data")))[0]
    assert '"tickets"' in my_data.text and '"resolved"' in my_data.text

    receipt = await store.erase(fan())
    await store.settle()
    sections = set(exported) - {"pseudonym", "encryption_key"}
    assert sections == set(receipt.parts), "export and erasure must walk the same parts"
    assert receipt.tickets == 1 and receipt.turns > 0 and receipt.data_keys == 1
    after = await store.export(fan())
    assert after["turns"] == [] and after["tickets"] == [] and after["encryption_key"] == "none"
    await store.aclose()


# Item 6: operator erasure never silently does nothing ------------------------------------


def operator(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bot", *args], capture_output=True, text=True, cwd=REPO, env=env, timeout=120)


@pytest.fixture
def seeded(database_url: str, tmp_path: Path) -> dict[str, str]:  # noqa: F811
    keys = MasterKeys.generate()

    async def seed() -> None:
        store = TranscriptStore.open(database_url, None, MasterKeys.parse(keys), KEY)
        bot = new_bot(store)
        for line in ("hello", "my mail is ann@example.com"):
            await bot.handle(Incoming("slack", "U0ANN", "D1", line))
        await store.aclose()

    asyncio.run(seed())
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOT_") or k == "BOT_TEST_POSTGRES_URL"}
    env.update(
        BOT_PSEUDONYM_KEY=KEY.decode(), BOT_MASTER_KEYS=keys, BOT_STORE_URL=database_url,
        BOT_SECRETS_DEV_KEYS_FILE=str(tmp_path / "never-used.env"),
    )
    return env


def test_forget_under_another_pseudonym_key_is_refused_and_keeps_the_data(seeded: dict[str, str]) -> None:
    wrong = operator("forget", "--user", "slack:U0ANN", env={**seeded, "BOT_PSEUDONYM_KEY": "another-key-0123456789abcdefghij"})
    assert wrong.returncode == 2, wrong.stdout + wrong.stderr
    assert "BOT_PSEUDONYM_KEY is not the key this store was created with" in wrong.stderr
    assert wrong.stderr.strip().count("\n") == 0 and wrong.stdout == ""
    exported = operator("export", "--user", "slack:U0ANN", env=seeded)
    assert exported.returncode == 0 and "[EMAIL]" in exported.stdout  # nothing was erased


def test_forget_and_export_of_an_id_with_nothing_stored_say_so_and_exit_1(seeded: dict[str, str]) -> None:
    for verb in ("forget", "export"):
        run = operator(verb, "--user", "slack:U0ANNN", env=seeded)  # mistyped id
        assert run.returncode == 1, (verb, run.stdout, run.stderr)
        assert "no data held for slack:U0ANNN under this pseudonym key" in run.stderr
        assert run.stdout == ""
    erased = operator("forget", "--user", "slack:U0ANN", env=seeded)
    assert erased.returncode == 0 and "erased" in erased.stdout
    again = operator("forget", "--user", "slack:U0ANN", env=seeded)
    assert again.returncode == 1 and "no data held" in again.stderr


async def test_store_refuses_another_pseudonym_key(database_url: str, master: MasterKeys) -> None:  # noqa: F811
    store = TranscriptStore.open(database_url, None, master, KEY)
    await store.aclose()
    with pytest.raises(KeyMismatchError):
        TranscriptStore.open(database_url, None, master, b"some-other-pseudonym-key-0123456789")
    TranscriptStore.open(database_url, None, master, KEY).engine.dispose()  # the right key still opens it


# Item 7: keys verified before any migration ------------------------------------------------


def _alembic_version(url: str) -> str:
    engine = create_engine(url, future=True)
    with engine.connect() as connection:
        version = connection.execute(text("SELECT version_num FROM alembic_version_transcripts")).scalar()
    engine.dispose()
    return str(version)


def _store_at_revision(url: str, revision: str, master: MasterKeys) -> None:
    """A database as an older release left it, holding one wrapped data key."""
    engine = create_engine(url, future=True)
    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS))
    for role in ("transcripts", "keys"):
        with engine.begin() as connection:
            config.attributes.update(connection=connection, role=role)
            command.upgrade(config, revision)
    with engine.begin() as connection:
        connection.execute(insert(data_keys).values(fan=fan(), wrapped=master.wrap(b"k" * 32), created_at=datetime.utcnow()))
    engine.dispose()


async def test_a_wrong_master_key_does_not_migrate_an_old_store(database_url: str, master: MasterKeys) -> None:  # noqa: F811
    _store_at_revision(database_url, "0001", master)
    with pytest.raises(MasterKeyError):
        TranscriptStore.open(database_url, None, MasterKeys.parse(MasterKeys.generate()), KEY)
    assert _alembic_version(database_url) == "0001"
    TranscriptStore.open(database_url, None, master, KEY, adopt_pseudonym_key=True).engine.dispose()
    assert _alembic_version(database_url) != "0001"  # the right key migrates it


# Item 8: the audit chain ------------------------------------------------------------------


async def test_verify_with_a_saved_head_accepts_later_records_and_catches_changes(database_url: str, master: MasterKeys) -> None:  # noqa: F811
    store = TranscriptStore.open(database_url, None, master, KEY)
    log = store.audit_log
    for number in range(5):
        log.record("export_served", "operator", {"turns": number})
    head = log.verify().head
    assert head != "0" * 64
    await store.purge(datetime(2000, 1, 1))  # a legitimate later record
    log.record("key_rotation", "operator", {"data_keys": 0})
    report = log.verify(head)
    assert report.ok and report.after_head == 2 and report.records == 7
    assert not log.verify("f" * 64).ok  # a head that is not in the chain
    with store.engine.begin() as connection:  # an earlier record is changed
        connection.execute(audit_log.update().where(audit_log.c.id == 2).values(detail='{"turns":99}'))
    changed = log.verify(head)
    assert not changed.ok and "record 2 was changed" in (changed.problem or "")
    await store.aclose()


def test_audit_verify_head_through_the_cli(seeded: dict[str, str]) -> None:
    first = operator("audit", "verify", env=seeded)
    assert first.returncode == 0, first.stderr
    head = first.stdout.strip().rsplit("head ", 1)[1].split(";")[0]
    assert operator("export", "--user", "slack:U0ANN", env=seeded).returncode == 0  # appends a record
    later = operator("audit", "verify", "--head", head, env=seeded)
    assert later.returncode == 0 and "1 record(s) written since the given head" in later.stdout, later.stdout
    cut = operator("audit", "verify", "--head", "e" * 64, env=seeded)
    assert cut.returncode == 1 and "not in the chain" in cut.stdout
    for malformed in ("deadbeef", "E" * 64, head + "0"):  # a typo is a usage error, not an integrity alarm
        typo = operator("audit", "verify", "--head", malformed, env=seeded)
        assert typo.returncode == 2 and "64-hex-digit" in typo.stderr and typo.stderr.count("\n") == 1, typo.stderr


def _append_many(url: str, count: int, actor: str) -> int:
    engine = create_engine(url, future=True, connect_args={"timeout": 30} if url.startswith("sqlite") else {})
    log = AuditLog(engine)
    failures = 0
    for number in range(count):
        try:
            log.record("export_served", actor, {"turns": number})
        except Exception:
            failures += 1
    engine.dispose()
    return failures


def test_two_processes_appending_at_once_never_fork_or_lose_the_chain(database_url: str, master: MasterKeys) -> None:  # noqa: F811
    TranscriptStore.open(database_url, None, master, KEY).engine.dispose()  # creates the schema
    context = multiprocessing.get_context("spawn")
    with context.Pool(2) as pool:
        failures = pool.starmap(_append_many, [(database_url, 300, "operator"), (database_url, 300, "fan")])
    assert failures == [0, 0]
    report = AuditLog(create_engine(database_url, future=True)).verify()
    assert report.ok and report.records == 600


# Erasure finished after a crash (issue 11 item 2 uses the same jobs) ----------------------


async def test_an_interrupted_erasure_is_finished_and_audited_at_the_next_start(database_url: str, master: MasterKeys) -> None:  # noqa: F811
    store = TranscriptStore.open(database_url, None, master, KEY)
    bot = new_bot(store)
    for line in ("hello", "/human", "anyone there?"):
        await bot.handle(Incoming("slack", "U0ANN", "D1", line))
    await bot.drain()
    with store.engine.begin() as connection:  # the job was recorded, then the process died
        connection.execute(insert(erasures).values(fan=fan(), actor="fan", requested_at=datetime.utcnow()))
    await store.aclose()

    reopened = TranscriptStore.open(database_url, None, master, KEY)
    await reopened.settle()
    with reopened.engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(turns).where(turns.c.fan == fan())).scalar() == 0
        assert connection.execute(select(func.count()).select_from(tickets).where(tickets.c.fan == fan())).scalar() == 0
        assert connection.execute(select(func.count()).select_from(data_keys).where(data_keys.c.fan == fan())).scalar() == 0
        assert connection.execute(select(func.count()).select_from(erasures)).scalar() == 0
    last = reopened.audit_log.entries()[-1]
    assert last["action"] == "erasure_executed" and '"resumed":true' in last["detail"]
    assert reopened.audit_log.verify().ok
    await reopened.aclose()


def test_bot_forget_killed_right_after_shredding_the_key_is_finished_at_the_next_start(seeded: dict[str, str]) -> None:
    """A real `bot forget` killed with SIGKILL the moment the fan's key is gone (turns still
    being deleted in batches): the next start finishes the erasure and audits it once."""
    import signal
    import time

    from bot.privacy.store import Turn

    url = seeded["BOT_STORE_URL"]
    master = MasterKeys.parse(seeded["BOT_MASTER_KEYS"])

    async def many_turns() -> None:
        store = TranscriptStore.open(url, None, master, KEY)
        at = datetime.utcnow()
        for start in range(0, 20_000, 1000):
            await store.append(*[Turn(fan(), "c" * 64, "fan", "message", at, f"turn {n}") for n in range(start, start + 1000)])
        await store.aclose()

    asyncio.run(many_turns())
    engine = create_engine(url, future=True)
    process = subprocess.Popen(
        [sys.executable, "-m", "bot", "forget", "--user", "slack:U0ANN"], cwd=REPO, env=seeded,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    with engine.connect() as connection:
        while time.monotonic() < deadline and process.poll() is None:
            held = connection.execute(select(func.count()).select_from(data_keys).where(data_keys.c.fan == fan())).scalar()
            connection.rollback()
            if not held:
                process.send_signal(signal.SIGKILL)
                break
    process.wait()
    with engine.connect() as connection:
        left_at_kill = connection.execute(select(func.count()).select_from(turns).where(turns.c.fan == fan())).scalar()
    engine.dispose()
    assert process.returncode == -signal.SIGKILL and left_at_kill, "the kill must land mid-erasure for this test to mean anything"

    async def restart() -> tuple[int, int, int]:
        store = TranscriptStore.open(url, None, master, KEY)
        await store.settle()
        with store.engine.connect() as connection:
            left = connection.execute(select(func.count()).select_from(turns).where(turns.c.fan == fan())).scalar()
            jobs = connection.execute(select(func.count()).select_from(erasures)).scalar()
        audited = sum(1 for e in store.audit_log.entries() if e["action"] == "erasure_executed")
        assert store.audit_log.verify().ok
        await store.aclose()
        return int(left or 0), int(jobs or 0), audited

    assert asyncio.run(restart()) == (0, 0, 1)


# `bot forget` beside a running bot (found by QA; issue 16 generalises it) -------------------


async def test_an_erasure_by_another_process_is_noticed_by_the_running_bot(database_url: str, master: MasterKeys) -> None:  # noqa: F811
    store = TranscriptStore.open(database_url, None, master, KEY)
    bot = new_bot(store)
    for line in ("hello", "/human", "are you there?"):
        await bot.handle(Incoming("slack", "U0ANN", "D1", line))
    await bot.drain()
    with store.engine.connect() as connection:
        old_key = connection.execute(select(data_keys.c.wrapped).where(data_keys.c.fan == fan())).scalar()

    operator = TranscriptStore.open(database_url, None, master, KEY)  # what `bot forget` opens, in its own process
    await operator.erase(fan(), actor="operator")
    await operator.settle()
    await operator.aclose()

    replies = await bot.handle(Incoming("slack", "U0ANN", "D1", "hello again"))
    assert replies[0].kind.value == "disclosure"  # a first contact: the old conversation state is gone
    assert not [r for r in replies if r.to == "desk"]  # nothing relayed to the erased ticket
    await bot.drain()
    exported = await store.export(fan())
    assert exported["tickets"] == []
    assert all("unreadable" not in turn["text"] for turn in exported["turns"])  # nothing under the shredded key
    with store.engine.connect() as connection:
        new_key = connection.execute(select(data_keys.c.wrapped).where(data_keys.c.fan == fan())).scalar()
    assert new_key is not None and new_key != old_key
    await store.aclose()


def test_a_store_from_before_fingerprints_is_not_adopted_by_whichever_key_opens_it(database_url: str, tmp_path: Path) -> None:  # noqa: F811
    """A 0001 store holding data (no fingerprint yet) opened by `bot export` with a wrong key
    must not record that key as the store's; `bot db upgrade` with the right key does."""
    master_keys = MasterKeys.generate()
    _store_at_revision(database_url, "0001", MasterKeys.parse(master_keys))
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOT_") or k == "BOT_TEST_POSTGRES_URL"}
    env.update(BOT_MASTER_KEYS=master_keys, BOT_STORE_URL=database_url, BOT_SECRETS_DEV_KEYS_FILE=str(tmp_path / "dev.env"))
    wrong = {**env, "BOT_PSEUDONYM_KEY": "a-wrong-pseudonym-key-0123456789abcdef"}
    right = {**env, "BOT_PSEUDONYM_KEY": KEY.decode()}
    refused = operator("export", "--user", "slack:U0ANN", env=wrong)
    assert refused.returncode == 2 and "bot db upgrade" in refused.stderr.strip().splitlines()[-1]
    assert operator("db", "upgrade", env=right).returncode == 0  # the operator's deliberate step records the key
    assert operator("export", "--user", "slack:U0ANN", env=wrong).returncode == 2  # now refused as not the store's key
    assert "not the key this store was created with" in operator("audit", "verify", env=wrong).stderr
    assert operator("audit", "verify", env=right).returncode == 0
