"""The bot and its model servers as separate processes (issue 15): a bot that never imports
Rasa, sticky routing over two real model servers with failover, erasure on every server, a
server stopped or frozen mid-conversation, and a bot that serves commands before any model
is ready. Every model server here is a real `rasa run` with the real trained model."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.config import AssistantSettings
from bot.conversation import ConversationMemory
from bot.core import Bot
from bot.engine.remote import ModelServerEngine
from bot.messages import Incoming, Kind
from bot.privacy.crypto import MasterKeys
from bot.privacy.pseudonym import Pseudonymizer
from bot.privacy.store import TranscriptStore
from bot.testing.model_server import children
from bot.testing.privacy_contacts import PRIVACY_CONTACTS
from standins.slack import SlackStandIn
from tests.integration.conftest import (
    MODEL,
    REPO,
    ModelServer,
    start_model_server,
)
from tests.integration.processes import LineReader

pytestmark = pytest.mark.integration
KEY = b"model-server-test-key-0123456789abcdef"


def kinds(replies: list) -> list[str]:  # type: ignore[type-arg]
    return [reply.kind.value for reply in replies]


def test_the_bot_process_imports_neither_rasa_nor_tensorflow(model_server: ModelServer) -> None:
    """Every module of the bot and its connectors imported, and a real answer from the model
    server: the bot's `sys.modules` holds no Rasa, TensorFlow or Keras (nor could it: the bot's
    environment does not have them)."""
    code = f"""
import asyncio, importlib, importlib.util, pkgutil, sys
import bot, connectors
for package in (bot, connectors):
    for module in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        if not module.name.endswith("__main__") and ".migrations" not in module.name:  # run by alembic only
            importlib.import_module(module.name)
from bot.engine.remote import ModelServerEngine
async def main():
    engine = ModelServerEngine([{model_server.url!r}], {model_server.token!r})
    print((await engine.respond("probe", "hello")).intent)
    await engine.aclose()
asyncio.run(main())
print(sorted(m for m in sys.modules if m.split(".")[0] in ("rasa", "tensorflow", "keras", "tf_keras", "sanic")))
print([name for name in ("rasa", "tensorflow") if importlib.util.find_spec(name) is not None])
print(sys.version_info[:2])
"""
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines() == ["greet", "[]", "[]", "(3, 12)"]


def engine_for(servers: list[ModelServer], timeout_seconds: float = 60.0) -> ModelServerEngine:
    """The bot's client over `servers` (which share one token)."""
    return ModelServerEngine([s.url for s in servers], servers[0].token, timeout_seconds=timeout_seconds)


def pair(servers: list[ModelServer]) -> tuple[ModelServerEngine, dict[str, ModelServerEngine]]:
    """An engine over both servers and one engine per server, to ask each server alone what it holds."""
    return engine_for(servers), {s.url: engine_for([s]) for s in servers}


@pytest.fixture(scope="module")
def shared_token_servers(trained_model: Path) -> Iterator[list[ModelServer]]:
    """Two real model servers with one shared secret, as an operator runs them."""
    token = f"shared-{uuid.uuid4().hex}"
    servers = [start_model_server(trained_model, token=token), start_model_server(trained_model, token=token)]
    yield servers
    for server in servers:
        if server.process.poll() is None:
            server.stop()


async def held_by(single: dict[str, ModelServerEngine], pseudonym: str) -> set[str]:
    """Which servers hold a tracker for the fan (asking drops it, so ask last)."""
    return {url for url, engine in single.items() if await engine.forget(pseudonym) == 1}


async def test_fans_stick_to_one_server_and_erasure_reaches_every_server(
    shared_token_servers: list[ModelServer], store: TranscriptStore
) -> None:
    both, single = pair(shared_token_servers)
    pseudonyms = Pseudonymizer(KEY)
    bot = Bot(both, pseudonyms, AssistantSettings(), ConversationMemory(idle_seconds=1800), store)
    fans = [f"U{uuid.uuid4().hex[:8].upper()}" for _ in range(8)]
    for fan in fans:
        for text in ("hello", "when is the next episode?", "how do I reset my password"):
            await bot.handle(Incoming("slack", fan, "D1", text))
    owners = {fan: both._ring.owner(pseudonyms.fan("slack", fan)) for fan in fans}
    assert len(set(owners.values())) == 2, "eight fans spread over both servers"
    # Each fan's dialogue context is on its own server only.
    erased, kept = fans[0], fans[1:]
    for fan in kept:
        assert await held_by(single, pseudonyms.fan("slack", fan)) == {owners[fan]}
    # A fan served by both servers (as after a failover) is erased from both.
    other = next(url for url in single if url != owners[erased])
    await single[other].respond(pseudonyms.fan("slack", erased), "hello")
    assert kinds(await bot.handle(Incoming("slack", erased, "D1", "/forget-me confirm"))) == ["erasure_done"]
    assert await held_by(single, pseudonyms.fan("slack", erased)) == set()
    for engine in (both, *single.values()):
        await engine.aclose()


async def test_a_frozen_server_times_out_honestly_and_answers_again_when_it_thaws(
    shared_token_servers: list[ModelServer], store: TranscriptStore
) -> None:
    engine = engine_for(shared_token_servers, timeout_seconds=2.0)
    bot = Bot(engine, Pseudonymizer(KEY), AssistantSettings(), ConversationMemory(idle_seconds=1800), store)
    fan = next(f"UF{i}" for i in range(100) if engine._ring.owner(Pseudonymizer(KEY).fan("slack", f"UF{i}")) == shared_token_servers[0].url)
    assert kinds(await bot.handle(Incoming("slack", fan, "D1", "hello"))) == ["disclosure", "answer"]
    shared_token_servers[0].process.send_signal(signal.SIGSTOP)  # alive but silent: a hung server
    try:
        loop = asyncio.get_running_loop()
        started = loop.time()
        replies = await bot.handle(Incoming("slack", fan, "D1", "when is the next episode?"))
        assert kinds(replies) == ["error"] and "/human" in replies[0].text
        assert loop.time() - started < 30  # the timeout, not a hang (generous: shared machine)
        assert kinds(await bot.handle(Incoming("slack", fan, "D1", "/privacy"))) == ["privacy_notice"]
    finally:
        shared_token_servers[0].process.send_signal(signal.SIGCONT)
    replies = await bot.handle(Incoming("slack", fan, "D1", "when is the next episode?"))
    assert kinds(replies) == ["answer"]
    await engine.aclose()


async def test_a_killed_server_fails_over_keeping_the_conversation_state(
    shared_token_servers: list[ModelServer], store: TranscriptStore
) -> None:
    """Runs last in this module: it kills the first server for good."""
    engine = engine_for(shared_token_servers)
    bot = Bot(engine, Pseudonymizer(KEY), AssistantSettings(), ConversationMemory(idle_seconds=1800), store)
    victim = shared_token_servers[0]
    fan = next(f"UK{i}" for i in range(100) if engine._ring.owner(Pseudonymizer(KEY).fan("slack", f"UK{i}")) == victim.url)
    assert kinds(await bot.handle(Incoming("slack", fan, "D1", "hello"))) == ["disclosure", "answer"]
    victim.process.kill()  # kill -9 mid-conversation
    victim.process.wait()
    replies = await bot.handle(Incoming("slack", fan, "D1", "how do I reset my password"))
    # The other server answers; the disclosure is not repeated (the bot keeps that state).
    assert [(r.kind, r.intent) for r in replies] == [(Kind.ANSWER, "faq_login")]
    await engine.aclose()


async def probe(port: int, route: str) -> tuple[int, list[str]]:
    import aiohttp

    async with aiohttp.ClientSession() as session:
        async with session.get(f"http://127.0.0.1:{port}/{route}") as response:
            body = await response.json()
            return response.status, body.get("problems", [])


async def until_probe(port: int, status: int, timeout: float = 60.0) -> list[str]:
    """`/readyz`'s problems once it answers `status` (raises after `timeout` seconds)."""
    for _ in range(int(timeout / 0.25)):
        got, problems = await probe(port, "readyz")
        if got == status:
            return problems
        await asyncio.sleep(0.25)
    raise AssertionError(f"/readyz never answered {status}")


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


async def test_bot_run_serves_commands_before_the_model_and_restarts_a_killed_model_server(
    trained_model: Path, tmp_path: Path
) -> None:
    """`bot run` with Slack: commands answered while the embedded model server loads, a fan's
    question told honestly that the assistant is starting, then answered once it is ready;
    the model server killed with SIGKILL: an honest error at once, then a restarted server
    answers; `/readyz` follows the model server and the store; SIGTERM stops the bot and its
    model server."""
    from bot.engine.child import free_port

    health_port = free_port()
    async with SlackStandIn(bot_token="xoxb-ms", app_token="xapp-ms") as slack:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("BOT_", "SLACK_", "DISCORD_"))}
        env.update(
            BOT_PSEUDONYM_KEY="ms-test-pseudonym-key-0123456789abcdef",
            **PRIVACY_CONTACTS,
            BOT_MASTER_KEYS=MasterKeys.generate(),
            BOT_STORE_URL=f"sqlite:///{tmp_path}/transcripts.db",
            SLACK_BOT_TOKEN="xoxb-ms",
            SLACK_APP_TOKEN="xapp-ms",
            SLACK_API_BASE_URL=slack.api_base_url,
            BOT_HEALTH_PORT=str(health_port),
        )
        assert subprocess.run([sys.executable, "-m", "bot", "db", "init"], cwd=REPO, env=env, capture_output=True).returncode == 0
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", "--model", str(MODEL), "run",
            cwd=REPO, env=env, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        log = LineReader(process.stderr)  # type: ignore[arg-type]
        fan = "UMS1"
        try:
            await slack.wait_for_socket(60)
            await log.wait_for("loading the dialogue model")
            await slack.send_command("/privacy", "", fan)
            await slack.send_dm(fan, "when is the next episode?")
            to_fan = lambda m: m.channel == slack.dm_channel(fan) or m.user == fan  # noqa: E731
            said = lambda *words: lambda m: to_fan(m) and any(w in (m.text or "") for w in words)  # noqa: E731
            await slack.wait_for_sent(said("transcripts", "privacy"), timeout=30)  # the command, at once
            first = (await slack.wait_for_sent(said("still starting up", "episode"), timeout=60))[0]
            if not any("dialogue model ready" in line for line in log.lines):  # the usual case: seconds of loading
                assert "still starting up" in (first.text or "")
            assert (await probe(health_port, "healthz"))[0] == 200
            if not any("dialogue model ready" in line for line in log.lines):
                assert await probe(health_port, "readyz") == (503, ["model server not ready"])
            await log.wait_for("dialogue model ready")
            assert await until_probe(health_port, 200) == []
            await slack.send_dm(fan, "how do I reset my password")
            await slack.wait_for_sent(said("password", "Password"), timeout=30)

            [server] = [pid for pid in children(process.pid) if b"rasa" in Path(f"/proc/{pid}/cmdline").read_bytes()]
            os.kill(server, signal.SIGKILL)
            before = len(slack.sent)
            await slack.send_dm(fan, "when is the next episode?")
            honest = (await slack.wait_for_sent(lambda m: said("went wrong", "still starting up")(m) and slack.sent.index(m) >= before, timeout=30))[0]
            assert "/human" in (honest.text or "")
            assert await until_probe(health_port, 503) == ["model server not ready"]
            await log.wait_for("restarting it")
            for _ in range(1200):  # up to 240 s for the restarted server to load
                if sum("dialogue model ready" in line for line in log.lines) >= 2:
                    break
                await asyncio.sleep(0.2)
                assert process.returncode is None, log.text
            before = len(slack.sent)
            await slack.send_dm(fan, "how do I reset my password")
            await slack.wait_for_sent(lambda m: said("password", "Password")(m) and slack.sent.index(m) >= before, timeout=30)
            [restarted] = [pid for pid in children(process.pid) if b"rasa" in Path(f"/proc/{pid}/cmdline").read_bytes()]
            assert await until_probe(health_port, 200) == []
            # The store's file moved away (and back): /readyz says so, by part name only.
            database = tmp_path / "transcripts.db"
            database.rename(tmp_path / "elsewhere.db")
            try:
                assert await until_probe(health_port, 503, timeout=40) == ["store not usable"]
            finally:
                (tmp_path / "elsewhere.db").rename(database)
            assert await until_probe(health_port, 200, timeout=40) == []
        finally:
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
            await asyncio.wait_for(process.wait(), 60)
        text = await log.finish()
        assert process.returncode == 0, text
        assert not _alive(restarted), "the model server stops with the bot"
        for private in ("episode", "password", fan):
            assert private not in text


def _self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, as an operator's own CA would issue one."""
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "model-server.test")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    cert_path, key_path = folder / "server.pem", folder / "server.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


async def test_a_model_server_on_tls_is_reached_with_the_configured_ca_and_refused_without(
    trained_model: Path, tmp_path: Path
) -> None:
    """Encryption in transit for a model server on another host: `rasa run --ssl-certificate`,
    and the bot's `[engine] ca_file`; without the CA the bot refuses the server (never plain
    trust), and the fan gets the honest error."""
    from bot.config import load_config
    from bot.engine import EngineUnavailable
    from bot.engine.child import free_port
    from bot.engine.lifecycle import open_engine
    from bot.testing.model_server import PROJECT, RASA

    cert, key = _self_signed(tmp_path)
    port, token = free_port(), f"tls-{uuid.uuid4().hex}"
    process = subprocess.Popen(
        RASA.serve_command(trained_model, "127.0.0.1", port, cert, key), cwd=PROJECT,
        env=RASA.environment(token, 1800), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        url = f"https://127.0.0.1:{port}"
        env = {"BOT_ENGINE_TOKEN": token}
        with_ca = load_config(assignments=[f"engine.url={url}", f"engine.ca_file={cert}", "engine.start_timeout_seconds=240"])
        async with open_engine(with_ca, wait_ready=True, environ=env) as engine:
            assert (await engine.respond("tls-fan", "hello")).intent == "greet"
        without_ca = load_config(assignments=[f"engine.url={url}"])
        async with open_engine(without_ca, environ=env) as engine:
            with pytest.raises(EngineUnavailable):
                await engine.respond("tls-fan", "hello")
    finally:
        process.terminate()
        process.wait(20)
