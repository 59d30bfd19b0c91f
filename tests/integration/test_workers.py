"""Several workers on one PostgreSQL: leader locks (bot/leader.py), the Discord gateway in
exactly one `bot run` process and its takeover after `kill -9`, and `/readyz` naming a
Discord standby. The lock tests use the real PostgreSQL; on SQLite the one process leads."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from bot.config import DiscordSettings
from bot.engine.child import free_port
from bot.engine.remote import ModelServerEngine
from bot.leader import AdvisoryLock, Leadership, SoleProcess, leader_lock, while_leading
from bot.privacy.crypto import MasterKeys
from bot.testing.privacy_contacts import PRIVACY_CONTACTS
from connectors.discord_connector import DiscordConnector
from connectors.discord_gateway import GatewayHolder
from connectors.health import HealthServer, Readiness
from connectors.router import Router
from standins.discord import DiscordStandIn
from tests.integration.conftest import MODEL, REPO, ModelServer
from tests.integration.databases import database_url  # noqa: F401 - the fixture
from tests.integration.processes import LineReader

pytestmark = pytest.mark.integration
POLL = 0.2
#: Generous bounds for a shared 2-core machine; the figures are printed, never asserted tightly.
TAKEOVER_BOUND_SECONDS = 60.0
FAN = 6161

HOLDER_SCRIPT = """
import asyncio, sys
from bot.leader import AdvisoryLock

async def main():
    lock = AdvisoryLock(sys.argv[1], "background-jobs", 0.2)
    await lock.wait_until_leading()
    print("leading", flush=True)
    await asyncio.sleep(3600)

asyncio.run(main())
"""


async def _leads_within(lock: Leadership, seconds: float) -> bool:
    try:
        await asyncio.wait_for(lock.wait_until_leading(), seconds)
        return True
    except TimeoutError:
        return False


async def test_exactly_one_of_two_candidates_leads_and_the_other_takes_over(database_url: str) -> None:  # noqa: F811
    first, second = leader_lock(database_url, "background-jobs", POLL), leader_lock(database_url, "background-jobs", POLL)
    try:
        assert await _leads_within(first, 10)
        if isinstance(first, SoleProcess):  # SQLite: one process per store, always the leader
            assert isinstance(second, SoleProcess) and second.leading
            return
        assert not await _leads_within(second, 10 * POLL)  # several polls: still not leading
        assert first.leading and await first.still_leading()
        # Another lock name is another leader: the gateway lock is free.
        gateway = leader_lock(database_url, "discord-gateway", POLL)
        assert await _leads_within(gateway, 10)
        await gateway.aclose()

        await first.aclose()  # the leader's connection closes: PostgreSQL releases its lock
        started = time.monotonic()
        assert await _leads_within(second, 30)
        print(f"\ntakeover after the leader's connection closed: {time.monotonic() - started:.2f} s (poll {POLL} s)")
    finally:
        await first.aclose()
        await second.aclose()


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)  # locks between processes
async def test_a_killed_leader_process_is_replaced(database_url: str) -> None:  # noqa: F811
    holder = await asyncio.create_subprocess_exec(
        sys.executable, "-c", HOLDER_SCRIPT, database_url, cwd=REPO, stdout=asyncio.subprocess.PIPE
    )
    waiting = AdvisoryLock(database_url, "background-jobs", POLL)
    try:
        assert holder.stdout is not None
        assert await asyncio.wait_for(holder.stdout.readline(), 60) == b"leading\n"
        assert not await _leads_within(waiting, 10 * POLL)
        holder.send_signal(signal.SIGKILL)
        await holder.wait()
        started = time.monotonic()
        assert await _leads_within(waiting, 30)
        print(f"\ntakeover after kill -9 of the leader: {time.monotonic() - started:.2f} s (poll {POLL} s)")
    finally:
        if holder.returncode is None:
            holder.kill()
            await holder.wait()
        await waiting.aclose()


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)  # locks between processes
async def test_a_lost_lock_stops_the_job_until_it_is_taken_again(database_url: str) -> None:  # noqa: F811
    from sqlalchemy import create_engine, text

    lock = AdvisoryLock(database_url, "background-jobs", POLL)
    runs: list[asyncio.Event] = []

    async def job() -> None:
        stopped = asyncio.Event()
        runs.append(stopped)
        try:
            await asyncio.sleep(3600)
        finally:
            stopped.set()

    leading = asyncio.create_task(while_leading(lock, job))
    admin = create_engine(database_url, isolation_level="AUTOCOMMIT")
    try:
        for _ in range(200):
            if runs:
                break
            await asyncio.sleep(0.05)
        assert len(runs) == 1
        # The database ends the leader's session (a restart, a network cut): the job must stop.
        with admin.connect() as connection:
            connection.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND objsubid = 2 "
                    "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
                )
            )
        await asyncio.wait_for(runs[0].wait(), 30)
        for _ in range(600):  # nobody else holds it: the lock is taken again and the job restarts
            if len(runs) == 2:
                break
            await asyncio.sleep(0.05)
        assert len(runs) == 2 and lock.leading
    finally:
        leading.cancel()
        await asyncio.gather(leading, return_exceptions=True)
        await lock.aclose()
        admin.dispose()


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)  # locks between processes
async def test_readyz_shows_a_discord_standby_as_ready_not_connected(database_url: str, model_server: ModelServer) -> None:  # noqa: F811
    holder_lock = AdvisoryLock(database_url, "discord-gateway", POLL)
    standby = GatewayHolder(
        DiscordConnector(DiscordSettings(api_base_url="http://127.0.0.1:9/api", gateway_url="ws://127.0.0.1:9"), "t", Router()),
        AdvisoryLock(database_url, "discord-gateway", POLL),
    )
    engine = ModelServerEngine([model_server.url], model_server.token)
    endpoint = HealthServer(Readiness(engine, store_problem=None, connectors=[standby]), "127.0.0.1", 0)
    await endpoint.start()
    try:
        assert await _leads_within(holder_lock, 10)  # another worker holds the gateway
        assert not await _leads_within(standby.lock, 3 * POLL)
        status, body = await asyncio.to_thread(_get, f"http://127.0.0.1:{endpoint.port}/readyz")
        assert status == 200, body
        assert body["connectors"] == {
            "discord": {"connected": False, "standby": True, "note": "standby: another worker holds the Discord gateway"}
        }
        # Holding the lock but not connected (the gateway unreachable): not ready, and named.
        await holder_lock.aclose()
        assert await _leads_within(standby.lock, 30)
        status, body = await asyncio.to_thread(_get, f"http://127.0.0.1:{endpoint.port}/readyz")
        assert status == 503 and body["problems"] == ["discord not connected"]
        assert body["connectors"] == {"discord": {"connected": False}}
    finally:
        await endpoint.aclose()
        await engine.aclose()
        await holder_lock.aclose()
        await standby.lock.aclose()
        await standby.connector.client.close()


def _get(url: str) -> tuple[int, dict[str, object]]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)  # locks between processes
async def test_two_workers_connect_one_discord_gateway_and_the_other_takes_over_after_kill_9(
    database_url: str, model_server: ModelServer, tmp_path: Path  # noqa: F811
) -> None:
    async with DiscordStandIn(token="workers-token") as discord:
        discord.add_member(FAN, "fan")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("BOT_", "SLACK_", "DISCORD_"))}
        env.update(
            BOT_PSEUDONYM_KEY="workers-test-pseudonym-key-0123456789abcdef",
            **PRIVACY_CONTACTS,
            BOT_MASTER_KEYS=MasterKeys.generate(),
            BOT_STORE_URL=database_url,
            BOT_ENGINE_URL=model_server.url,  # both workers share one real model server
            BOT_ENGINE_TOKEN=model_server.token,
            BOT_DISCORD_GUILD_ID=str(discord.guild_id),
            BOT_LOGGING_LEVEL="INFO",
            BOT_STORE_SPOOL_PATH=str(tmp_path / "spool.db"),
            DISCORD_TOKEN="workers-token",
            DISCORD_API_BASE_URL=discord.api_base,
            DISCORD_GATEWAY_URL=discord.gateway_url,
        )
        init = await asyncio.create_subprocess_exec(sys.executable, "-m", "bot", "db", "init", cwd=REPO, env=env)
        assert await init.wait() == 0
        workers, logs, ports = [], [], []
        try:
            for index in range(2):
                port = free_port()
                worker_env = {**env, "BOT_HEALTH_PORT": str(port), "BOT_STORE_SPOOL_PATH": str(tmp_path / f"spool-{index}.db")}
                process = await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "bot", "--model", str(MODEL), "run", "--no-slack",
                    cwd=REPO, env=worker_env, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
                    stderr=asyncio.subprocess.PIPE,
                )
                assert process.stderr is not None
                workers.append(process)
                logs.append(LineReader(process.stderr))
                ports.append(port)
                if index == 0:
                    await logs[0].wait_for("holds the gateway", 120)
            await discord.wait_until_connected(60)
            await logs[1].wait_for("another process holds the discord-gateway lock", 120)
            await asyncio.sleep(5 * POLL + 5)  # the standby's polls go by: still one gateway session
            assert discord.identifies == 1
            holder, standby = 0, 1
            status, body = await asyncio.to_thread(_get, f"http://127.0.0.1:{ports[standby]}/readyz")
            assert status == 200 and body["connectors"]["discord"]["standby"] is True, body

            await discord.send_dm(FAN, "hello there")
            await discord.wait_for_sent(lambda m: m.channel_id == discord.dm_channel_id(FAN), count=2, timeout=60)

            workers[holder].send_signal(signal.SIGKILL)
            await workers[holder].wait()
            killed = time.monotonic()
            await logs[standby].wait_for("holds the gateway", TAKEOVER_BOUND_SECONDS)
            for _ in range(int(TAKEOVER_BOUND_SECONDS * 10)):
                if discord.identifies == 2:
                    break
                await asyncio.sleep(0.1)
            assert discord.identifies == 2, logs[standby].text
            print(f"\nDiscord gateway takeover after kill -9 of its worker: {time.monotonic() - killed:.1f} s (IDENTIFY seen)")
            before = len([m for m in discord.sent if m.channel_id == discord.dm_channel_id(FAN)])
            await discord.send_dm(FAN, "are you still there?")
            await discord.wait_for_sent(lambda m: m.channel_id == discord.dm_channel_id(FAN), count=before + 1, timeout=60)
        finally:
            for process in workers:
                if process.returncode is None:
                    process.send_signal(signal.SIGTERM)
            for process in workers:
                await asyncio.wait_for(process.wait(), 60)
        assert workers[1].returncode == 0, await logs[1].finish()


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)  # locks between processes
async def test_a_stopping_process_takes_no_lock_and_says_it_leads_once(database_url: str, caplog: pytest.LogCaptureFixture) -> None:  # noqa: F811
    """QA: a worker that had received SIGTERM took the Discord gateway over while it finished its
    replies, and a holder waited on by three tasks said three times that it held the lock."""
    caplog.set_level(logging.INFO, logger="bot.leader")
    holder, stopping = AdvisoryLock(database_url, "discord-gateway", POLL), AdvisoryLock(database_url, "discord-gateway", POLL)
    try:
        waiters = [asyncio.create_task(holder.wait_until_leading()) for _ in range(3)]  # the gateway, the jobs, the purge
        await asyncio.wait_for(asyncio.gather(*waiters), 10)
        assert [r.getMessage() for r in caplog.records].count("this process now holds the discord-gateway lock") == 1
        assert not await _leads_within(stopping, 3 * POLL)
        stopping.resign()  # SIGTERM: finishing replies in flight
        await holder.aclose()
        assert not await _leads_within(stopping, 10 * POLL)  # free, but not taken by a stopping process
        assert not stopping.leading
    finally:
        await holder.aclose()
        await stopping.aclose()
