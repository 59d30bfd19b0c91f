"""Transcript writes that could not reach the database wait here, on local disk, encrypted.

While the database is down (a PostgreSQL restart, a network cut), the bot keeps answering
and the turns it would have stored go to a small SQLite file beside the bot, each batch
encrypted with the master keys (the fans' data keys may be out of reach too). Once the
database answers again the spool is written back in order, before anything newer, and
emptied. It is bounded: past `max_batches` the oldest batches are dropped, with a logged
count. Store thread only (the store calls it from its own thread).
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Any, Optional

from bot.privacy.crypto import MasterKeys

logger = logging.getLogger(__name__)
MAX_BATCHES = 20_000


class Spool:
    def __init__(self, path: Path, master: MasterKeys, max_batches: int = MAX_BATCHES) -> None:
        self._path = path
        self._master = master
        self._max = max_batches
        self._connection: Optional[sqlite3.Connection] = None
        self.pending = 0
        if path.exists():
            self.pending = self._db().execute("SELECT COUNT(*) FROM spool").fetchone()[0]

    def _db(self) -> sqlite3.Connection:
        if self._connection is None:
            self._path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            if not self._path.exists():
                os.close(os.open(self._path, os.O_WRONLY | os.O_CREAT, 0o600))
            self._connection = sqlite3.connect(self._path, check_same_thread=False)
            self._connection.execute("PRAGMA secure_delete=ON")
            self._connection.execute(
                "CREATE TABLE IF NOT EXISTS spool (id INTEGER PRIMARY KEY AUTOINCREMENT, blob BLOB NOT NULL)"
            )
        return self._connection

    def put(self, turns: Sequence[Any], check_logging: bool) -> None:
        """Keeps a batch of `Turn`s; `check_logging`: the fan's `/privacy` choice was not known
        when it was queued, so it is checked when the batch is written back."""
        body = json.dumps({"check_logging": check_logging, "turns": [_plain(turn) for turn in turns]})
        db = self._db()
        with db:
            db.execute("INSERT INTO spool (blob) VALUES (?)", (self._master.wrap(body.encode()),))
            self.pending += 1
            if self.pending > self._max:
                over = self.pending - self._max
                db.execute("DELETE FROM spool WHERE id IN (SELECT id FROM spool ORDER BY id LIMIT ?)", (over,))
                self.pending -= over
                logger.error("the transcript spool is full: %d oldest batch(es) dropped", over)

    def drain(self, write: Callable[[list[Any], bool], None], make_turn: Callable[..., Any], limit: int = 500) -> int:
        """Writes spooled batches back in order through `write(turns, check_logging)`, deleting
        each once written; stops at the first failure (it raises). Returns batches written."""
        if not self.pending:
            return 0
        db = self._db()
        written = 0
        while True:
            rows = db.execute("SELECT id, blob FROM spool ORDER BY id LIMIT ?", (limit,)).fetchall()
            if not rows:
                break
            for row_id, blob in rows:
                item = json.loads(self._master.unwrap(blob))
                write([make_turn(**_revive(turn)) for turn in item["turns"]], bool(item["check_logging"]))
                with db:
                    db.execute("DELETE FROM spool WHERE id = ?", (row_id,))
                self.pending -= 1
                written += 1
        if written:
            with db:
                db.execute("VACUUM")  # no spooled ciphertext left in free pages
            logger.warning("wrote %d spooled transcript batch(es) back to the database", written)
        return written

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


def _plain(turn: Any) -> dict[str, Any]:
    data = asdict(turn)
    data["at"] = data["at"].isoformat()
    return data


def _revive(data: dict[str, Any]) -> dict[str, Any]:
    return {**data, "at": datetime.fromisoformat(data["at"])}
