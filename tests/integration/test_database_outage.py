"""A database outage is not silence (issue 11 item 6): with PostgreSQL unreachable (a real
server behind a loopback proxy the test cuts), every fan gets a reply at once (an honest
"I can't reach my records" where the store is needed), transcript writes wait in the
encrypted local spool, and once the database is back they are all written, in order."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Optional

import pytest
from sqlalchemy import select
from sqlalchemy.engine import make_url

from bot.config import AssistantSettings, HandoffSettings
from bot.conversation import ConversationMemory
from bot.core import STORE_DOWN_TEXT, Bot
from bot.messages import Incoming, Kind
from bot.privacy.crypto import MasterKeys
from bot.privacy.pseudonym import Pseudonymizer
from bot.privacy.schema import turns
from bot.privacy.store import TranscriptStore
from bot.testing.fake_engine import FakeEngine
from tests.integration.test_privacy_store import database_url  # noqa: F401  (fixture)

pytestmark = pytest.mark.integration
KEY = b"outage-test-pseudonym-key-0123456789abcd"


class Proxy:
    """A TCP relay on loopback, in its own thread and loop, that the test can cut and restore."""

    def __init__(self, host: str, port: int) -> None:
        self._target = (host, port)
        self._loop = asyncio.new_event_loop()
        self._server: Optional[asyncio.base_events.Server] = None
        self._writers: set[asyncio.StreamWriter] = set()
        self.port = 0
        threading.Thread(target=self._loop.run_forever, daemon=True).start()
        self._call(self._listen())

    def _call(self, coroutine):  # type: ignore[no-untyped-def]
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(10)

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self._target)
        except OSError:
            writer.close()
            return
        self._writers |= {writer, upstream_writer}

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            try:
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                sink.close()

        await asyncio.gather(pipe(reader, upstream_writer), pipe(upstream_reader, writer))

    async def _cut(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.close()
        self._writers.clear()
        # Since Python 3.12, wait_closed() also waits for the relayed connections to end.
        await self._server.wait_closed()

    def cut(self) -> None:
        self._call(self._cut())

    def restore(self) -> None:
        self._call(self._listen())

    def close(self) -> None:
        self._call(self._cut())
        self._loop.call_soon_threadsafe(self._loop.stop)


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)  # a server that becomes unreachable
async def test_an_outage_gets_honest_replies_and_loses_no_transcript(database_url: str, tmp_path: Path) -> None:  # noqa: F811
    real = make_url(database_url)
    proxy = Proxy(real.host or "127.0.0.1", real.port or 5432)
    url = str(real.set(host="127.0.0.1", port=proxy.port))
    master = MasterKeys.parse(MasterKeys.generate())
    store = TranscriptStore.open(url, None, master, KEY, spool_path=tmp_path / "spool.db")
    bot = Bot(FakeEngine(), Pseudonymizer(KEY), AssistantSettings(), ConversationMemory(1800), store,
              handoff=HandoffSettings(moderators=("M1",)))
    try:
        for fan in range(10):  # known fans, before the outage
            await bot.handle(Incoming("slack", f"U{fan}", "D", "hello"))
        await bot.drain()
        before = await store.count_turns()

        proxy.cut()
        replies = {}
        for fan in range(20):  # ten known fans and ten new ones write during the outage
            replies[fan] = await asyncio.wait_for(bot.handle(Incoming("slack", f"U{fan}", "D", "when is the next episode?")), 10)
        commands = {}
        for command in ("/human", "/my-data", "/privacy off", "/forget-me confirm"):
            commands[command] = await asyncio.wait_for(bot.handle(Incoming("slack", "U3", "D", command)), 10)
        await bot.drain()
        assert store.spooled > 0  # the writes wait on disk
        assert (tmp_path / "spool.db").stat().st_mode & 0o777 == 0o600

        # A fan's active ticket lives only in the database (issue 16): during the outage the bot
        # cannot tell whether the fan is talking to a person, so it answers nobody with the model
        # and says so at once instead.
        for fan, answer in replies.items():
            assert answer and answer[-1].kind is Kind.ERROR and answer[-1].text == STORE_DOWN_TEXT, (fan, answer)
        for command, answer in commands.items():
            assert [r.kind for r in answer][-1] is Kind.ERROR and answer[-1].text == STORE_DOWN_TEXT, command
        assert await store.check_health() is not None

        proxy.restore()
        assert await store.check_health() is None  # back: the spool is written back
        assert store.spooled == 0
        with store.engine.connect() as connection:
            stored = connection.execute(select(turns.c.fan, turns.c.kind).order_by(turns.c.id)).all()
        new_fans = {Pseudonymizer(KEY).fan("slack", f"U{fan}") for fan in range(10, 20)}
        assert len(stored) >= before + 20 * 2  # every fan's message and answer, new fans' disclosures too
        assert new_fans <= {row.fan for row in stored}
        exported = await store.export(Pseudonymizer(KEY).fan("slack", "U15"))
        assert [t["kind"] for t in exported["turns"]][:2] == ["message", "disclosure"]  # as if never down
    finally:
        await store.aclose()
        proxy.close()
