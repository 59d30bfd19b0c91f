"""Append-only, hash-chained record of privacy and moderator actions.

Each record's hash covers the previous hash, so changing or removing a record breaks the
chain from there on. Records carry counts and kinds, never message content and never a
fan's pseudonym (an erased fan must leave no row that names them). Cutting records off
the end is only detectable against a head hash saved elsewhere: `bot audit verify`
prints it so an operator can keep it.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Optional

from sqlalchemy import insert, select, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError, OperationalError

from bot.privacy.schema import audit_log

GENESIS = "0" * 64


def _digest(prev_hash: str, record_id: int, at: datetime, action: str, actor: str, detail: str) -> str:
    material = "|".join([prev_hash, str(record_id), at.isoformat(), action, actor, detail])
    return hashlib.sha256(material.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class AuditReport:
    """`records` verified; `head` the newest hash; with an expected head, `after_head` counts
    the records written since it (legitimate appends such as the hourly purge)."""

    records: int
    head: str
    problem: Optional[str] = None
    after_head: Optional[int] = None

    @property
    def ok(self) -> bool:
        return self.problem is None


#: Appends retried when another process took the same record id first (SQLite has no
#: row lock to wait on; PostgreSQL also takes an advisory lock, so it rarely retries).
APPEND_ATTEMPTS = 200
#: PostgreSQL advisory lock key serialising appends across processes ("audit" in ASCII).
APPEND_LOCK = 0x6175646974


class AuditLog:
    """Appends in the caller's transaction or its own; the database serialises appends
    from every process (the record id is the primary key: a second writer of the same id
    fails and retries on the new head), so the chain never forks."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._lock = threading.Lock()  # this process's threads queue here instead of retrying

    def record(
        self,
        action: str,
        actor: str,
        detail: Mapping[str, Any],
        at: Optional[datetime] = None,
        connection: Optional[Connection] = None,
    ) -> str:
        """Appends one record; returns its hash. Safe from any thread and any process.

        With `connection` (in a transaction), the record commits or rolls back with the
        caller's other writes; a conflict then raises `AuditConflict` for the caller's
        transaction to be retried. Without, it retries on its own.
        """
        when = (at or datetime.utcnow()).replace(microsecond=0)
        body = json.dumps(dict(detail), sort_keys=True, separators=(",", ":"))
        with self._lock:
            if connection is not None:
                return self._append(connection, when, action, actor, body)
            for attempt in range(APPEND_ATTEMPTS):
                try:
                    with self._engine.begin() as own:
                        return self._append(own, when, action, actor, body)
                except (IntegrityError, OperationalError):
                    time.sleep(min(0.001 * (attempt + 1), 0.05))
            raise AuditConflict(f"could not append to the audit log after {APPEND_ATTEMPTS} attempts")

    @staticmethod
    def _append(connection: Connection, when: datetime, action: str, actor: str, body: str) -> str:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": APPEND_LOCK})
        last = connection.execute(select(audit_log.c.id, audit_log.c.hash).order_by(audit_log.c.id.desc()).limit(1)).first()
        record_id, prev_hash = (last.id + 1, last.hash) if last else (1, GENESIS)
        digest = _digest(prev_hash, record_id, when, action, actor, body)
        connection.execute(
            insert(audit_log).values(id=record_id, at=when, action=action, actor=actor, detail=body, prev_hash=prev_hash, hash=digest)
        )
        return digest

    def verify(self, expected_head: Optional[str] = None) -> AuditReport:
        """Checks every link of the chain. With `expected_head` (a head saved earlier), also
        that it is in the chain, so nothing up to it was changed or cut off; the records
        after it are counted, not refused."""
        expected_prev, expected_id, count = GENESIS, 1, 0
        head_at: Optional[int] = 0 if expected_head == GENESIS else None
        with self._engine.connect() as connection:
            for row in connection.execute(select(audit_log).order_by(audit_log.c.id)).mappings():
                if row["id"] != expected_id:
                    return AuditReport(count, expected_prev, f"record {expected_id} is missing (next is {row['id']})")
                if row["prev_hash"] != expected_prev:
                    return AuditReport(count, expected_prev, f"record {row['id']} does not follow record {row['id'] - 1}")
                digest = _digest(row["prev_hash"], row["id"], row["at"], row["action"], row["actor"], row["detail"])
                if digest != row["hash"]:
                    return AuditReport(count, expected_prev, f"record {row['id']} was changed after it was written")
                expected_prev, expected_id, count = row["hash"], expected_id + 1, count + 1
                if expected_head is not None and row["hash"] == expected_head:
                    head_at = count
        if expected_head is not None:
            if head_at is None:
                return AuditReport(
                    count, expected_prev, "the expected head hash is not in the chain: records up to it were cut off or changed"
                )
            return AuditReport(count, expected_prev, after_head=count - head_at)
        return AuditReport(count, expected_prev)

    def entries(self) -> list[dict[str, Any]]:
        with self._engine.connect() as connection:
            return [dict(row) for row in connection.execute(select(audit_log).order_by(audit_log.c.id)).mappings()]


class AuditConflict(RuntimeError):
    """Another process appended at the same moment, every time we tried."""
