"""Tickets in the store, so a restart mid-handoff resumes it.

Moves are conditional updates (`WHERE status = <expected>`): when two moderators claim
at once, exactly one update matches and the other is refused. The fan's reply route is
encrypted with their data key, so erasing the key also makes old routes unreadable.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Optional

from sqlalchemy import func, insert, select, update

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


class TicketStore:
    def __init__(self, store: TranscriptStore) -> None:
        self._store = store

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
    ) -> tuple[Ticket, list[dict[str, Any]], Optional[datetime]]:
        """Writes a new open ticket and reads what its packet needs, in one store job.

        Returns the ticket, the fan's last `history` turns and when they were told it is an AI.
        """

        def work() -> tuple[Ticket, list[dict[str, Any]], Optional[datetime]]:
            key = self._store.data_key(fan, create=True)
            assert key is not None
            body = crypto.encrypt(key, json.dumps(route.__dict__, sort_keys=True))
            with self._store.engine.begin() as connection:
                ticket_id = connection.execute(
                    insert(tickets).values(
                        fan=fan, conversation=conversation, platform=route.platform, route=body,
                        status=Status.OPEN.value, reason=reason, created_at=at, timeout_notified=False,
                    )
                ).inserted_primary_key[0]
            ticket = Ticket(ticket_id, fan, conversation, route.platform, route, Status.OPEN, reason, None, None, at, False)
            return ticket, self._store.read_recent_turns(fan, history), self._store.read_first_disclosure(fan)

        return await self._store.run(work)

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
