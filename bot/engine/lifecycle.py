"""Which engine a command gets: the configured model servers, or the embedded one.

`[engine] url`/`urls` set: the bot talks to those servers with `BOT_ENGINE_TOKEN`.
Neither set: `bot` starts `rasa run` as its child (`bot.engine.child`) with a token made
for the run, and stops it on exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import ssl
import sys
from collections.abc import AsyncIterator, Mapping
from typing import Optional

from bot.config import Config
from bot.engine import ModelMissingError
from bot.engine.child import ModelServerChild
from bot.engine.rasa_env import RasaEnvironment
from bot.engine.remote import ModelServerEngine

TOKEN_VARIABLE = "BOT_ENGINE_TOKEN"
MIN_TOKEN_CHARS = 16


class EngineConfigError(ValueError):
    """The model servers cannot be used as configured; one line, exit 2."""


def _token(environ: Mapping[str, str]) -> str:
    token = environ.get(TOKEN_VARIABLE, "").strip()
    if len(token) < MIN_TOKEN_CHARS:
        problem = "is not set" if not token else f"is shorter than {MIN_TOKEN_CHARS} characters"
        raise EngineConfigError(
            f"[engine] names model servers but {TOKEN_VARIABLE} {problem}: set it to the servers' shared secret "
            "(e.g. python3 -c 'import secrets; print(secrets.token_urlsafe(32))')"
        )
    return token


def _ssl_context(config: Config) -> Optional[ssl.SSLContext]:
    if not config.engine.ca_file:
        return None
    try:
        return ssl.create_default_context(cafile=config.engine.ca_file)
    except (ssl.SSLError, OSError) as error:
        raise EngineConfigError(f"engine.ca_file: {config.engine.ca_file} holds no usable CA certificate ({error.__class__.__name__})") from None


def require_model(config: Config) -> None:
    """The embedded server needs a trained model and Rasa's environment; fails fast, with one
    line, before keys or databases are touched. Remote servers hold their own model."""
    if config.engine.servers:
        _token(os.environ)
        return
    RasaEnvironment(config.rasa.environment, config.rasa.project_dir).check()
    if not config.rasa.model_path.is_file():
        raise ModelMissingError(f"no trained model at {config.rasa.model_path}: run `bot train` (or `make run`)")


async def _until_ready(engine: ModelServerEngine, timeout_seconds: float) -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    next_line = started + 1.0
    while not await engine.ready():
        now = loop.time()
        if now - started > timeout_seconds:
            raise EngineConfigError(f"no model server answered within {timeout_seconds:g} s: {', '.join(engine.servers)}")
        if now >= next_line:
            print(f"bot: waiting for a model server to answer ({now - started:.0f} s of {timeout_seconds:g}): {', '.join(engine.servers)}", file=sys.stderr, flush=True)
            next_line = now + 5.0
        await asyncio.sleep(0.5)


@contextlib.asynccontextmanager
async def open_engine(
    config: Config, wait_ready: bool = False, environ: Mapping[str, str] = os.environ
) -> AsyncIterator[ModelServerEngine]:
    """The engine for this process. `wait_ready`: return only once a server answers (batch
    commands such as `bot replay`); otherwise at once (`bot run` serves commands meanwhile)."""
    timeout = config.engine.timeout_seconds
    if config.engine.servers:
        engine = ModelServerEngine(
            config.engine.servers, _token(environ), timeout, _ssl_context(config),
            max_in_flight=config.engine.max_in_flight, queue_seconds=config.engine.queue_seconds,
        )  # fmt: skip
        try:
            if wait_ready:
                await _until_ready(engine, config.engine.start_timeout_seconds)
            yield engine
        finally:
            await engine.aclose()
        return
    require_model(config)
    child = ModelServerChild(
        RasaEnvironment(config.rasa.environment, config.rasa.project_dir),
        config.rasa.model_path,
        config.assistant.conversation_idle_minutes * 60,
        port=config.engine.port,
        start_timeout_seconds=config.engine.start_timeout_seconds,
    )
    engine = ModelServerEngine(
        [child.url], child.token, timeout, max_in_flight=config.engine.max_in_flight, queue_seconds=config.engine.queue_seconds
    )
    engine.starting = True
    supervisor = asyncio.create_task(child.run(engine), name="model-server")
    try:
        if wait_ready:
            ready = asyncio.create_task(child.wait_ready())
            await asyncio.wait([ready, supervisor], timeout=config.engine.start_timeout_seconds, return_when=asyncio.FIRST_COMPLETED)
            ready.cancel()
            if supervisor.done():
                supervisor.result()
            if engine.starting:
                raise EngineConfigError(f"the model server was not ready within {config.engine.start_timeout_seconds:g} s")
        yield engine
    finally:
        await child.aclose()
        supervisor.cancel()
        await asyncio.gather(supervisor, return_exceptions=True)
        await engine.aclose()
