"""Tickets in the store, so a restart mid-handoff resumes it.

Moves are conditional updates (`WHERE status = <expected>`): when two moderators claim
at once, exactly one update matches and the other is refused. The fan's reply route is
encrypted with their data key, so erasing the key also makes old routes unreadable.

Tickets opened while the store thread is busy are inserted together, in one transaction
(group commit), and each opening still waits for its commit: a fan is told about a ticket
only once it is stored, so a restart resumes it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Optional

from sqlalchemy import func, insert, select, text, update
from sqlalchemy.engine import Connection

from bot.handoff.states import ACTIVE, Action, IllegalTransition, Status, next_status
from bot.messages import Address
from bot.privacy import crypto
from bot.privacy.schema import tickets
from bot.privacy.store import TranscriptStore

ACTIVE_VALUES = [status.value for status in ACTIVE]
_PAST = {
    Action.CLAIM: "claimed", Action.UNCLAIM: "unclaimed", Action.TRANSFER: "transferred",
    Action.RESOLVE: "resolved", Action.CANCEL: "cancelled", Action.ERASE: "erased",
}


@dataclass(frozen=True)
class Ticket:
    id: int
    fan: str
    conversation: str
    platform: str
    route: Optional[Address]
    status: Status
    reason: str
    moderator: Optional[str]
    moderator_name: Optional[str]
    created_at: datetime
    timeout_notified: bool


@dataclass(frozen=True)
class _Opening:
    fan: str
    conversation: str
    route: Address
    reason: str
    at: datetime
    history: int


Opened = tuple[Ticket, list[dict[str, Any]], Optional[datetime]]


class TicketStore:
    def __init__(self, store: TranscriptStore) -> None:
        self._store = store
        # Awaited by each opener: a burst of /human in one loop iteration is one transaction.
        self._openings = store.group_commit(self._open_group, same_tick=True)

    def _ticket(self, row: dict) -> Ticket:  # type: ignore[type-arg]
        key = self._store.data_key(row["fan"], create=False)
        route: Optional[Address] = None
        if key is not None:
            try:
                route = Address(**json.loads(crypto.decrypt(key, row["route"])))
            except crypto.CiphertextError:
                route = None
        return Ticket(
            id=row["id"],
            fan=row["fan"],
            conversation=row["conversation"],
            platform=row["platform"],
            route=route,
            status=Status(row["status"]),
            reason=row["reason"],
            moderator=row["moderator"],
            moderator_name=row["moderator_name"],
            created_at=row["created_at"],
            timeout_notified=bool(row["timeout_notified"]),
        )

    def _select_one(self, *conditions: object) -> Optional[Ticket]:
        with self._store.engine.connect() as connection:
            row = connection.execute(select(tickets).where(*conditions).order_by(tickets.c.id.desc()).limit(1)).mappings().first()
        return self._ticket(dict(row)) if row else None

    async def open(
        self, fan: str, conversation: str, route: Address, reason: str, at: datetime, history: int
    ) -> Opened:
        """Writes a new open ticket and gets what its packet needs; returns once it is committed.

        Returns the ticket, the fan's last `history` turns and when they were told it is an AI
        (from memory when the store holds the fan's recent turns, see `RecentTurns`).
        """
        return await self._openings.submit(_Opening(fan, conversation, route, reason, at, history))

    def _open_group(self, openings: list[_Opening]) -> list[Opened]:
        """Store thread: every ticket opened meanwhile, in one transaction, then each packet's
        history (from memory, or read on the same connection)."""
        with self._store.engine.connect() as connection:
            with connection.begin():
                self._store.forget_erased_elsewhere((opening.fan for opening in openings), connection)
                rows = []
                for opening in openings:
                    key = self._store.data_key(opening.fan, create=True)
                    assert key is not None
                    rows.append(
                        {
                            "fan": opening.fan, "conversation": opening.conversation, "platform": opening.route.platform,
                            "route": crypto.encrypt(key, json.dumps(opening.route.__dict__, sort_keys=True)),
                            "status": Status.OPEN.value, "reason": opening.reason, "created_at": opening.at,
                            "timeout_notified": False,
                        }
                    )
                ids = _insert(connection, rows)
            return [
                (
                    Ticket(ticket_id, o.fan, o.conversation, o.route.platform, o.route, Status.OPEN, o.reason, None, None, o.at, False),
                    *self._store.recent_history(o.fan, o.history, connection),
                )
                for o, ticket_id in zip(openings, ids)
            ]

    async def move(
        self,
        ticket: Ticket,
        action: Action,
        at: datetime,
        actor: str,
        moderator: Optional[str] = None,
        moderator_name: Optional[str] = None,
    ) -> Ticket:
        """Applies one state-machine move and audits it, in one store job; raises
        `IllegalTransition` for an illegal move or when a rival changed the ticket first."""
        target = next_status(ticket.status, action)
        values: dict[str, Any] = {"status": target.value}
        if action in (Action.CLAIM, Action.TRANSFER):
            values.update(moderator=moderator, moderator_name=moderator_name, claimed_at=at)
        elif action is Action.UNCLAIM:
            values.update(moderator=None, moderator_name=None, claimed_at=None)
        if target not in ACTIVE:
            values["closed_at"] = at

        def work() -> Ticket:
            with self._store.engine.begin() as connection:
                changed = connection.execute(
                    update(tickets)
                    .where(tickets.c.id == ticket.id, tickets.c.status == ticket.status.value)
                    .values(**values)
                ).rowcount
            if not changed:
                current = self._select_one(tickets.c.id == ticket.id)
                state = current.status.value if current else "erased"
                raise IllegalTransition(f"ticket {ticket.id} changed meanwhile: it is {state} now")
            detail: dict[str, Any] = {"ticket": ticket.id}
            if action is Action.TRANSFER:
                detail["to"] = moderator
            self._store.audit_log.record(f"ticket_{_PAST[action]}", actor, detail, at=at)
            return replace(
                ticket,
                status=target,
                moderator=values.get("moderator", ticket.moderator),
                moderator_name=values.get("moderator_name", ticket.moderator_name),
            )

        return await self._store.run(work)

    async def mark_timeout_notified(self, ticket_id: int) -> None:
        def work() -> None:
            with self._store.engine.begin() as connection:
                connection.execute(update(tickets).where(tickets.c.id == ticket_id).values(timeout_notified=True))

        await self._store.run(work)

    async def listing(self, active_only: bool = True) -> list[Ticket]:
        def work() -> list[Ticket]:
            query = select(tickets).order_by(tickets.c.id)
            if active_only:
                query = query.where(tickets.c.status.in_(ACTIVE_VALUES))
            with self._store.engine.connect() as connection:
                return [self._ticket(dict(row)) for row in connection.execute(query).mappings().all()]

        return await self._store.run(work)


def _insert(connection: Connection, rows: list[dict[str, Any]]) -> list[int]:
    """Inserts ticket rows in one statement; returns their ids, numbered as the database
    would have: after the largest id on SQLite (a rowid table), from the id sequence on
    PostgreSQL (so it never hands out one of these again)."""
    backend = connection.dialect.name
    if backend == "sqlite":
        last = connection.execute(select(func.max(tickets.c.id))).scalar() or 0
        ids = list(range(last + 1, last + 1 + len(rows)))
    elif backend == "postgresql":
        ids = sorted(
            connection.execute(
                text("SELECT nextval(pg_get_serial_sequence('tickets', 'id')) FROM generate_series(1, :n)"), {"n": len(rows)}
            ).scalars()
        )
    else:  # any other database: one insert per ticket, still in one transaction
        return [connection.execute(insert(tickets).values(**row)).inserted_primary_key[0] for row in rows]
    connection.execute(insert(tickets), [dict(row, id=ticket_id) for row, ticket_id in zip(rows, ids)])
    return ids
