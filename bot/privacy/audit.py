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
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Mapping, Optional

from sqlalchemy import insert, select
from sqlalchemy.engine import Engine

from bot.privacy.schema import audit_log

GENESIS = "0" * 64


def _digest(prev_hash: str, record_id: int, at: datetime, action: str, actor: str, detail: str) -> str:
    material = "|".join([prev_hash, str(record_id), at.isoformat(), action, actor, detail])
    return hashlib.sha256(material.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class AuditReport:
    records: int
    head: str
    problem: Optional[str] = None

    @property
    def ok(self) -> bool:
        return self.problem is None


class AuditLog:
    """Writes through its own short transactions; one lock keeps the chain linear."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._lock = threading.Lock()

    def record(self, action: str, actor: str, detail: Mapping[str, Any], at: Optional[datetime] = None) -> str:
        """Appends one record; returns its hash. Safe to call from any thread."""
        when = (at or datetime.utcnow()).replace(microsecond=0)
        body = json.dumps(dict(detail), sort_keys=True, separators=(",", ":"))
        with self._lock, self._engine.begin() as connection:
            last = connection.execute(select(audit_log.c.id, audit_log.c.hash).order_by(audit_log.c.id.desc()).limit(1)).first()
            record_id, prev_hash = (last.id + 1, last.hash) if last else (1, GENESIS)
            digest = _digest(prev_hash, record_id, when, action, actor, body)
            connection.execute(
                insert(audit_log).values(
                    id=record_id, at=when, action=action, actor=actor, detail=body, prev_hash=prev_hash, hash=digest
                )
            )
        return digest

    def verify(self, expected_head: Optional[str] = None) -> AuditReport:
        expected_prev, expected_id, count = GENESIS, 1, 0
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
        if expected_head and expected_head != expected_prev:
            return AuditReport(count, expected_prev, "the newest records do not end at the expected head hash")
        return AuditReport(count, expected_prev)

    def entries(self) -> list[dict[str, Any]]:
        with self._engine.connect() as connection:
            return [dict(row) for row in connection.execute(select(audit_log).order_by(audit_log.c.id)).mappings()]
