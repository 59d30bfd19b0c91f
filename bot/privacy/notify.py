"""Cache invalidation across processes: PostgreSQL `LISTEN/NOTIFY` on `fan_changed`.

Every process may cache a fan's data key, logging preference and recent turns
(`bot.privacy.caches`). A change that makes such a cache wrong (an erasure, a `/privacy`
choice, a key rotation) is announced in the transaction that makes it, so the notice goes
out exactly when the change commits and never for a change that rolled back. Each serving
process listens on a dedicated connection and drops the fan's entries at once.

The payload names the fan by a token (SHA-256 of a label and the pseudonym): the pseudonym
is itself an HMAC of the platform id, so neither can be recovered from the token, and it
never names a platform id. NOTIFY is not replayed to a process that was not listening:
after every (re)connection the listener drops ALL caches, and the versioned read on the
data-key row stays the safety net (`TranscriptStore.erased_elsewhere` and the write-time
check). SQLite is single-process: announcing is a no-op there and nothing listens.
"""

from __future__ import annotations

import hashlib
import logging
import os
import select
import threading
from typing import TYPE_CHECKING, Any, Optional

from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine

if TYPE_CHECKING:
    from bot.privacy.store import TranscriptStore

logger = logging.getLogger(__name__)

CHANNEL = "fan_changed"
#: Kinds of change: the fan was erased; their logging preference changed; data keys were rewrapped.
ERASED, PREFERENCE, KEYS = "erased", "preference", "keys"
EVERY_FAN = "*"
FIRST_BACKOFF_SECONDS = 0.1
MAX_BACKOFF_SECONDS = 5.0


def fan_token(fan: str) -> str:
    """The fan as named on the channel: derived from the pseudonym, not reversible."""
    return hashlib.sha256(b"fan_changed v1:" + fan.encode()).hexdigest()[:32]


def announce(connection: Connection, kind: str, token: str, origin: str) -> None:
    """Queues a notice in `connection`'s transaction (sent when it commits); SQLite: nothing."""
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_notify(:channel, :payload)"), {"channel": CHANNEL, "payload": f"{kind} {token} {origin}"})


class ChangeListener:
    """A thread holding one `LISTEN fan_changed` connection, feeding `store.changed`.

    Reconnects with backoff when the connection is lost (server restart, `pg_terminate_backend`)
    and drops every cache once it listens again, since notices sent meanwhile are lost."""

    def __init__(self, engine: Engine, store: TranscriptStore) -> None:
        self._engine = engine
        self._store = store
        self._stop = threading.Event()
        self._wake_read, self._wake_write = os.pipe()
        #: How many times a LISTEN connection was established (for checks and tests).
        self.connections = 0
        self.listening = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fan-changes", daemon=True)

    def start(self) -> ChangeListener:
        self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        os.write(self._wake_write, b"x")
        self._thread.join(10)
        os.close(self._wake_read)
        os.close(self._wake_write)

    def _connect(self) -> Any:
        args, params = self._engine.dialect.create_connect_args(self._engine.url)
        params = {**params, "connect_timeout": 5, "application_name": "fan-changes",
                  "keepalives": 1, "keepalives_idle": 10, "keepalives_interval": 5, "keepalives_count": 3}
        connection = self._engine.dialect.dbapi.connect(*args, **params)  # type: ignore[union-attr]  # psycopg2 is loaded
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute(f"LISTEN {CHANNEL}")
        return connection

    def _run(self) -> None:
        delay, failing = FIRST_BACKOFF_SECONDS, False
        while not self._stop.is_set():
            try:
                connection = self._connect()
            except Exception as error:
                if not failing:
                    logger.warning("cannot listen for other processes' changes; retrying: %s", type(error).__name__)
                failing = True
                self._stop.wait(delay)
                delay = min(delay * 2, MAX_BACKOFF_SECONDS)
                continue
            delay, failing = FIRST_BACKOFF_SECONDS, False
            self.connections += 1
            self._store.drop_all_cached()  # listening now: whatever changed before is re-read
            self.listening.set()
            try:
                self._listen(connection)
            except Exception as error:
                if not self._stop.is_set():
                    logger.warning("lost the connection listening for other processes' changes: %s", type(error).__name__)
            finally:
                self.listening.clear()
                self._store.drop_all_cached()  # deaf until reconnected: trust nothing held
                try:
                    connection.close()
                except Exception:  # already gone
                    pass

    def _listen(self, connection: Any) -> None:
        while not self._stop.is_set():
            readable, _, _ = select.select([connection, self._wake_read], [], [], 30.0)
            if connection not in readable:
                continue
            connection.poll()  # raises when the server closed the connection
            while connection.notifies:
                notice = connection.notifies.pop(0)
                self._deliver(notice.payload)

    def _deliver(self, payload: str) -> None:
        kind, _, rest = payload.partition(" ")
        token, _, origin = rest.partition(" ")
        if kind in (ERASED, PREFERENCE, KEYS) and token:
            self._store.changed(kind, token, origin)


def listen_for_changes(store: TranscriptStore) -> Optional[ChangeListener]:
    """Starts listening when the store is on PostgreSQL (the store stops it on close)."""
    if store.engine.dialect.name != "postgresql":
        return None
    listener = ChangeListener(store.engine, store).start()
    store.on_close(listener.close)
    return listener
