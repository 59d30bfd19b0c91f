"""Assembles a `Bot` from the config: the one place where the parts meet."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from datetime import datetime

from bot.config import Config
from bot.conversation import ConversationMemory
from bot.core import Bot
from bot.engine import DialogueEngine
from bot.privacy.events import epoch
from bot.privacy.local_files import private_spool, private_sqlite
from bot.privacy.notify import listen_for_changes
from bot.privacy.pseudonym import Pseudonymizer
from bot.privacy.redact import configure as configure_redaction
from bot.privacy.secrets import Secrets, secrets_with_dev_fallback
from bot.privacy.single_process import serve_sqlite_alone
from bot.privacy.store import TranscriptStore

logger = logging.getLogger(__name__)


def local_secrets(config: Config) -> Secrets:
    """Secrets from the environment, or generated dev keys for local console use."""
    secrets, created = secrets_with_dev_fallback(os.environ, config.secrets.dev_keys_file)
    if created:
        print(
            f"bot: generated local development keys in {config.secrets.dev_keys_file} (mode 0600); "
            "set BOT_PSEUDONYM_KEY and BOT_MASTER_KEYS in the environment for real deployments",
            file=sys.stderr,
        )
    return secrets


def open_store(
    config: Config,
    secrets: Secrets,
    url: str | None = None,
    create: bool = True,
    adopt_pseudonym_key: bool = False,
    serving: bool = False,
) -> TranscriptStore:
    """Opens and migrates the store; a wrong master or pseudonym key stops here, before any
    migration or write. `create` False: a missing store is an error, not a new empty one.
    `adopt_pseudonym_key` (`bot db`): a store from before key fingerprints takes this key's.
    Every folder made for a new SQLite store or the spool is owner-only (the store and the
    spool make only the last one 0700), and their existing files are tightened to 0600."""
    spool_path = None if url else config.store.spool_path
    url = url or config.store.url
    for database in (url, config.store.keys_url):
        if database:
            private_sqlite(database, create)
    if spool_path is not None:
        private_spool(spool_path, create)
    serving_lock = serve_sqlite_alone(url) if serving else None
    try:
        store = TranscriptStore.open(
            url, config.store.keys_url or None, secrets.master_keys, secrets.pseudonym_key, create=create, spool_path=spool_path,
            adopt_pseudonym_key=adopt_pseudonym_key,
        )
    except BaseException:
        if serving_lock is not None:
            serving_lock.release()
        raise
    store.on_close(serving_lock.release if serving_lock is not None else None)
    if serving:  # PostgreSQL: other processes' erasures and choices reach this one's caches
        listen_for_changes(store)
    return store


def build_bot(
    config: Config,
    secrets: Secrets,
    engine: DialogueEngine,
    store: TranscriptStore,
    clock: Callable[[], datetime] = datetime.utcnow,
) -> Bot:
    # The conversations' timestamps on the bot's clock too (a replay's, `bot.replay.ReplayClock`).
    memory = ConversationMemory(idle_seconds=config.assistant.conversation_idle_minutes * 60, clock=lambda: epoch(clock()))
    configure_redaction(config.privacy.phone_regions)
    return Bot(
        engine,
        Pseudonymizer(secrets.pseudonym_key),
        config.assistant,
        memory,
        store,
        retention_days=config.privacy.retention_days,
        clock=clock,
        handoff=config.handoff,
        privacy=config.privacy,
    )
