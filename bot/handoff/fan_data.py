"""A fan's handoff tickets as part of "everything about a fan" (see `bot.privacy.fan_data`):
exported with their timings and the moderator's chosen display name, erased with the
locations of every desk message posted about them, so the desks can delete those too.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Optional

from sqlalchemy import Table, delete, insert, literal, select
from sqlalchemy.engine import Connection

from bot.handoff.locations import DeskPost
from bot.privacy.fan_data import Erased, iso
from bot.privacy.schema import desk_posts, desk_removals, tickets

ACTIVE_STATUSES = ("open", "claimed")


@dataclass(frozen=True)
class ErasedTickets(Erased):
    #: Tickets that were still open or claimed: the desk is told they were erased.
    active: tuple[int, ...] = ()
    #: Every desk message posted about the fan's tickets, for the desks to delete.
    posts: tuple[DeskPost, ...] = ()


class TicketsPart:
    name = "tickets"
    tables: tuple[Table, ...] = (tickets, desk_posts)

    def export(self, connection: Connection, fan: str, key: Optional[bytes]) -> Any:
        rows = connection.execute(select(tickets).where(tickets.c.fan == fan).order_by(tickets.c.id)).mappings().all()
        posted = _posts_by_ticket(connection, [row["id"] for row in rows])
        return [
            {
                "ticket": row["id"],
                "status": row["status"],
                "reason": row["reason"],
                "platform": row["platform"],
                "opened_at": iso(row["created_at"]),
                "claimed_at": iso(row["claimed_at"]),
                "closed_at": iso(row["closed_at"]),
                "moderator": row["moderator_name"],
                "desk_messages": len(posted.get(row["id"], [])),
            }
            for row in rows
        ]

    def erase(self, connection: Connection, fan: str) -> ErasedTickets:
        rows = connection.execute(select(tickets.c.id, tickets.c.status).where(tickets.c.fan == fan)).all()
        ids = [row.id for row in rows]
        posted = _posts_by_ticket(connection, ids)
        posts = tuple(post for ticket in ids for post in posted.get(ticket, []))
        if ids:
            if posts:  # the desk deletes them; until it has, their locations wait here
                queued = datetime.utcnow()
                connection.execute(
                    insert(desk_removals),
                    [{"desk": p.desk, "channel": p.channel, "message": p.message, "ticket": p.ticket, "queued_at": queued} for p in posts],
                )
            connection.execute(delete(desk_posts).where(desk_posts.c.ticket.in_(ids)))
            connection.execute(delete(tickets).where(tickets.c.id.in_(ids)))
        active = tuple(sorted(row.id for row in rows if row.status in ACTIVE_STATUSES))
        return ErasedTickets(self.name, len(ids), active, posts)


    def purge(self, connection: Connection, before: datetime) -> int:
        """Retention: tickets closed before `before` go, with the locations of their desk
        messages (queued for the running bot to delete those too)."""
        old = select(tickets.c.id).where(tickets.c.status.not_in(ACTIVE_STATUSES), tickets.c.closed_at < before)
        expired = desk_posts.c.ticket.in_(old.scalar_subquery())
        connection.execute(  # the desk copies expire with their ticket: the running bot deletes them
            insert(desk_removals).from_select(
                ["desk", "channel", "message", "ticket", "queued_at"],
                select(desk_posts.c.desk, desk_posts.c.channel, desk_posts.c.message, desk_posts.c.ticket,
                       literal(datetime.utcnow()).label("queued_at")).where(expired),
            )
        )
        connection.execute(delete(desk_posts).where(expired))
        return int(
            connection.execute(delete(tickets).where(tickets.c.status.not_in(ACTIVE_STATUSES), tickets.c.closed_at < before)).rowcount
        )


def _posts_by_ticket(connection: Connection, ids: list[int]) -> dict[int, list[DeskPost]]:
    if not ids:
        return {}
    found: dict[int, list[DeskPost]] = {}
    query = select(desk_posts).where(desk_posts.c.ticket.in_(ids)).order_by(desk_posts.c.id)
    for row in connection.execute(query).mappings():
        found.setdefault(row["ticket"], []).append(DeskPost(row["ticket"], row["desk"], row["channel"], row["message"]))
    return found
