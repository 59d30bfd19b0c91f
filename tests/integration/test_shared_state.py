"""State that outlives a message lives in the database (issue 16): two `Bot`s, each with its own
store object on the same database (two processes' worth of state), behave as one bot. On a
real SQLite file and a real PostgreSQL; the advisory lock on PostgreSQL only, and a second
serving process on one SQLite store is refused (a real `bot chat` child)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from bot.config import AssistantSettings, HandoffSettings, SlackSettings
from bot.conversation import ConversationMemory
from bot.core import Bot
from bot.engine import EngineResult
from bot.messages import Incoming, Kind
from bot.privacy.pseudonym import Pseudonymizer
from bot.privacy.single_process import StoreInUseError, serve_sqlite_alone
from bot.privacy.store import TranscriptStore
from bot.testing.fake_engine import FakeEngine
from connectors.router import Router
from connectors.slack_connector import SlackConnector, SlackTokens
from standins.slack import SlackStandIn
from tests.integration.conftest import MODEL, REPO
from tests.integration.databases import database_url, stores  # noqa: F401  (fixtures)
from tests.integration.test_slack_connector import APP_TOKEN, BOT_TOKEN, SECRET, free_port

pytestmark = pytest.mark.integration
KEY = b"shared-state-test-pseudonym-key-0123456789"
SETTINGS = HandoffSettings(moderators=("M1",))


def kinds(replies: list) -> list[str]:  # type: ignore[type-arg]
    return [reply.kind.value for reply in replies]


def fan_says(text: str, user: str = "U1") -> Incoming:
    return Incoming("slack", user, "D1", text)


def two_bots(stores: tuple[TranscriptStore, TranscriptStore], engine: object = None) -> tuple[Bot, Bot]:
    return tuple(  # type: ignore[return-value]
        Bot(engine or FakeEngine(), Pseudonymizer(KEY), AssistantSettings(), ConversationMemory(1800), store, handoff=SETTINGS)  # type: ignore[arg-type]
        for store in stores
    )


async def test_the_disclosure_goes_out_once_whichever_process_answers(stores) -> None:  # type: ignore[no-untyped-def]
    a, b = two_bots(stores)
    assert kinds(await a.handle(fan_says("hello")))[0] == "disclosure"
    assert "disclosure" not in kinds(await b.handle(fan_says("I forgot my password")))
    assert "disclosure" not in kinds(await a.handle(fan_says("hello again")))
    assert kinds(await b.handle(fan_says("hello", user="U2")))[0] == "disclosure"  # another fan: their own first contact
    await a.drain()
    await b.drain()
    fan = Pseudonymizer(KEY).fan("slack", "U1")
    assert await stores[0].count_turns(fan) == 7  # three messages, three answers, one disclosure: no write lost to a key race


async def test_why_explains_the_answer_given_by_the_other_process(stores) -> None:  # type: ignore[no-untyped-def]
    a, b = two_bots(stores)
    await a.handle(fan_says("I forgot my password"))  # FakeEngine: faq_login at 0.9
    [why] = await b.handle(fan_says("/why"))
    assert why.kind is Kind.EXPLANATION and why.intent == "faq_login" and why.confidence == pytest.approx(0.9)


async def test_a_burst_of_fans_each_keeps_their_own_state(stores) -> None:  # type: ignore[no-untyped-def]
    """Loads and saves arriving at once are read and written together (one statement for the
    burst): each fan still meets their own state, on the other process too."""
    a, b = two_bots(stores)
    said = {f"U{n}": ("I forgot my password", "faq_login") if n % 2 else ("I want a refund", "faq_billing") for n in range(20)}
    first = await asyncio.gather(*(a.handle(fan_says(text, user=user)) for user, (text, _) in said.items()))
    assert all(kinds(replies)[0] == "disclosure" for replies in first)
    whys = await asyncio.gather(*(b.handle(fan_says("/why", user=user)) for user in said))
    assert [kinds(replies) for replies in whys] == [["explanation"]] * len(said)  # none a first contact again
    assert [why.intent for [why] in whys] == [intent for _, intent in said.values()]  # each their own answer explained


async def test_a_handoff_offer_made_in_one_process_is_accepted_in_the_other(stores) -> None:  # type: ignore[no-untyped-def]
    a, b = two_bots(stores)
    offered = await a.handle(fan_says("this is useless"))  # FakeEngine: complaint -> an offer of a person
    assert kinds(offered)[-1] == "handoff_offer"
    accepted = await b.handle(fan_says("yes"))
    assert "handoff_started" in kinds(accepted), kinds(accepted)


async def test_erasure_in_one_process_makes_the_next_message_a_first_contact_in_the_other(stores) -> None:  # type: ignore[no-untyped-def]
    a, b = two_bots(stores)
    await a.handle(fan_says("hello"))
    assert kinds(await b.handle(fan_says("/forget-me confirm")))[0] == "erasure_done"
    await b.drain()
    assert kinds(await a.handle(fan_says("hello")))[0] == "disclosure"


@dataclass
class SlowEngine(FakeEngine):
    """Takes a while to answer and records how many messages of a fan it answers at once."""

    busy: dict[str, int] = field(default_factory=dict)
    most: int = 0

    async def respond(self, pseudonym: str, text: str) -> EngineResult:
        self.busy[pseudonym] = self.busy.get(pseudonym, 0) + 1
        self.most = max(self.most, self.busy[pseudonym])
        try:
            await asyncio.sleep(0.3)  # long enough that unserialised messages overlap
            return await super().respond(pseudonym, text)
        finally:
            self.busy[pseudonym] -= 1


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)  # SQLite is single-process
async def test_one_fans_messages_in_two_processes_take_turns(stores) -> None:  # type: ignore[no-untyped-def]
    engine = SlowEngine()
    a, b = two_bots(stores, engine)
    first, second = await asyncio.gather(a.handle(fan_says("hello")), b.handle(fan_says("I forgot my password")))
    assert engine.most == 1  # never both at once
    assert kinds(first).count("disclosure") + kinds(second).count("disclosure") == 1  # and so one first contact
    await a.drain()
    await b.drain()
    fan = Pseudonymizer(KEY).fan("slack", "U1")
    assert await stores[0].count_turns(fan) == 5  # both messages, both answers, one disclosure: no write lost to a key race


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_fans_still_take_turns_after_the_lock_connections_were_cut(stores, database_url: str) -> None:  # type: ignore[no-untyped-def]
    """The per-fan locks live on one connection per process: when the database cuts it (a
    restart, an administrator), the next message reconnects rather than going unlocked."""
    engine = SlowEngine()
    a, b = two_bots(stores, engine)
    await asyncio.gather(a.handle(fan_says("hello")), b.handle(fan_says("hello", user="U2")))  # both lock connections open
    admin = create_engine(database_url, isolation_level="AUTOCOMMIT", future=True)
    with admin.connect() as connection:
        cut = connection.execute(
            text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND query LIKE '%pg_advisory_unlock%' AND pid <> pg_backend_pid()"
            )
        ).scalar()
    admin.dispose()
    assert cut == 2
    engine.most = 0
    await asyncio.gather(a.handle(fan_says("I forgot my password")), b.handle(fan_says("and my email")))
    assert engine.most == 1  # never both at once


async def test_a_slack_retry_reaching_the_other_process_gets_no_second_reply(stores) -> None:  # type: ignore[no-untyped-def]
    """Slack HTTP mode behind a load balancer: the retry of an event can land on any worker."""
    standin = SlackStandIn(bot_token=BOT_TOKEN, app_token=APP_TOKEN, signing_secret=SECRET, mode="http")
    await standin.start()
    standin.add_user("UFAN1", "fan one")
    workers = []
    for bot in two_bots(stores):
        settings = SlackSettings(mode="http", http_port=free_port(), api_base_url=standin.api_base_url, rate_limit_retries=2)
        router = Router()  # each worker routes its own replies
        connector = SlackConnector(settings, SlackTokens(BOT_TOKEN, APP_TOKEN, SECRET), router, None, http_host="127.0.0.1")
        router.add_platform("slack", connector)
        task = asyncio.create_task(connector.run(bot))
        for _ in range(500):
            if connector.http_port or task.done():
                break
            await asyncio.sleep(0.02)
        workers.append((connector, task, f"http://127.0.0.1:{settings.http_port}{settings.http_path}", bot))
    try:
        dm = standin.dm_channel("UFAN1")
        standin.http_target = workers[0][2]
        first = await standin.send_dm("UFAN1", "how do I reset my password?")
        await standin.wait_for_sent(lambda m: m.channel == dm, count=2, timeout=20)
        standin.http_target = workers[1][2]
        again = await standin.redeliver(first)  # same event_id, to the other worker
        assert again.acked
        copy = await standin.redeliver_as_new(first)  # same message under a new event id
        assert copy.acked
        await asyncio.sleep(1.0)
        for *_, bot in workers:
            await bot.drain()
        assert len([m for m in standin.sent if m.channel == dm]) == 2  # the disclosure and one answer
    finally:
        for connector, task, _, _ in workers:
            await connector.aclose()
            await asyncio.wait_for(task, 10)
        await standin.aclose()


def test_a_second_serving_process_on_one_sqlite_store_is_refused(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOT_")}
    env["BOT_SECRETS_DEV_KEYS_FILE"] = str(tmp_path / "dev-keys.env")
    url = f"sqlite:///{tmp_path}/transcripts.db"
    env["BOT_STORE_URL"] = url
    command = [sys.executable, "-m", "bot", "--model", str(MODEL)]
    lock = tmp_path / "transcripts.db.lock"
    first = subprocess.Popen(
        [*command, "chat"], cwd=REPO, env=env, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        start_new_session=True,  # its model server child is in its group: killed with it
    )
    try:
        for _ in range(1500):  # it holds the store once its pid is in the lock file
            if lock.exists() and lock.read_text().strip() == str(first.pid):
                break
            assert first.poll() is None, first.stderr.read().decode() if first.stderr else ""
            time.sleep(0.02)
        second = subprocess.run([*command, "chat"], cwd=REPO, env=env, input="hello\n", capture_output=True, text=True, timeout=120)
        assert second.returncode == 2
        [line] = second.stderr.strip().splitlines()
        assert f"pid {first.pid}" in line and "single-process" in line
        beside = subprocess.run([*command, "audit", "verify"], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
        assert beside.returncode == 0, beside.stderr  # operator commands stay allowed beside a running bot
        with pytest.raises(StoreInUseError):
            serve_sqlite_alone(url)
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(30)
    held = serve_sqlite_alone(url)  # the kernel released it with the process
    assert held is not None
    held.release()
