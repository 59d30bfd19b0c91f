"""Tickets in the store, so a restart mid-handoff resumes it.

The database owns every ticket: any number of bot processes on one store read a fan's
active ticket, the queue and the due notices from it, never from an index of their own.
Moves are conditional updates (`WHERE status = <expected>`): when two moderators claim
at once, exactly one update matches and the other is refused; each move commits with its
audit record. A fan has at most one active ticket (a unique partial index, migration 0006),
and each timeout or release notice is claimed by one conditional update: told once. The fan's reply route is
encrypted with their data key, so erasing the key also makes old routes unreadable.

Tickets opened while the store thread is busy are inserted together, in one transaction
(group commit), and each opening still waits for its commit: a fan is told about a ticket
only once it is stored, so a restart resumes it. Ticket numbers are never handed out twice
(SQLite AUTOINCREMENT's sequence, PostgreSQL's serial), so an erased ticket's desk thread or
buttons can never name a later fan's ticket.

Each ticket's desk location (packet message, thread) is stored on its row and every desk
message posted about it in `desk_posts`: a desk finds a ticket by where a moderator acted,
in the database, never by a message's wording or by one process's memory.
"""

from __future__ import annotations

import json
import time
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Optional

from sqlalchemy import ColumnElement, DateTime, Integer, String, delete, exists, func, insert, literal, select, text, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from bot.handoff.locations import DeskLocation, DeskPost
from bot.handoff.states import ACTIVE, Action, IllegalTransition, Status, next_status
from bot.messages import Address, Kind
from bot.privacy import crypto, events
from bot.privacy.audit import APPEND_ATTEMPTS
from bot.privacy.schema import desk_posts, desk_removals, dialect_insert, preferences, tickets, turns
from bot.privacy.store import TranscriptStore

ACTIVE_VALUES = [status.value for status in ACTIVE]
#: The predicate of the unique index `ux_tickets_active_fan`, spelled as the index spells it.
_ACTIVE_WHERE = text("status IN ('open', 'claimed')")
_PAST = {
    Action.CLAIM: "claimed", Action.UNCLAIM: "unclaimed", Action.TRANSFER: "transferred",
    Action.RESOLVE: "resolved", Action.CANCEL: "cancelled", Action.ERASE: "erased",
    Action.TAKEOVER: "taken_over", Action.RELEASE: "released",
}
#: Stored for a handoff only while it lasts when the fan has `/privacy off`.
HANDOFF_KINDS = (Kind.HANDOFF_RELAY.value, Kind.MODERATOR_REPLY.value)


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
    location: Optional[DeskLocation] = None
    claimed_at: Optional[datetime] = None
    last_moderator_reply_at: Optional[datetime] = None
    silence_notified: bool = False

    @property
    def quiet_since(self) -> Optional[datetime]:
        """Since when a claimed ticket has had no word from its moderator."""
        return self.last_moderator_reply_at or self.claimed_at


@dataclass(frozen=True)
class _Opening:
    fan: str
    conversation: str
    route: Address
    reason: str
    at: datetime
    history: int


@dataclass(frozen=True)
class Opened:
    """What `/human` needs: the ticket, the fan's last turns and when they were shown the
    disclosure (for the packet), whether the ticket is new (False: the fan had an active
    ticket already, opened by any process), and its place in the queue."""

    ticket: Ticket
    turns: list[dict[str, Any]]
    disclosed: Optional[datetime]
    new: bool
    place: int


class TicketStore:
    def __init__(self, store: TranscriptStore) -> None:
        self._store = store
        # Awaited by each opener: a burst of /human in one loop iteration is one transaction.
        self._openings = store.group_commit(self._open_group, same_tick=True)

    def _ticket(self, row: dict[str, Any]) -> Ticket:
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
            location=DeskLocation(row["desk"], row["desk_channel"], row["desk_thread"], row["desk_message"])
            if row["desk"] and row["desk_channel"] else None,
            claimed_at=row["claimed_at"],
            last_moderator_reply_at=row["last_moderator_reply_at"],
            silence_notified=bool(row["silence_notified"]),
        )

    def _select_one(self, *conditions: ColumnElement[bool]) -> Optional[Ticket]:
        with self._store.engine.connect() as connection:
            row = connection.execute(select(tickets).where(*conditions).order_by(tickets.c.id.desc()).limit(1)).mappings().first()
        return self._ticket(dict(row)) if row else None

    def _select_all(self, *conditions: ColumnElement[bool]) -> list[Ticket]:
        with self._store.engine.connect() as connection:
            rows = connection.execute(select(tickets).where(*conditions).order_by(tickets.c.id)).mappings().all()
        return [self._ticket(dict(row)) for row in rows]

    # Reads: what every process sees ----------------------------------------------------

    async def active_of(self, fan: str) -> Optional[Ticket]:
        """The fan's active ticket, opened by any process (one indexed read)."""
        return await self._store.run(lambda: self._select_one(tickets.c.fan == fan, tickets.c.status.in_(ACTIVE_VALUES)))

    async def active(self, ticket_id: Optional[int]) -> Optional[Ticket]:
        """An active ticket by number, or (None) the newest active one: the desk's "last"."""
        conditions: list[ColumnElement[bool]] = [tickets.c.status.in_(ACTIVE_VALUES)]
        if ticket_id is not None:
            conditions.append(tickets.c.id == ticket_id)
        return await self._store.run(lambda: self._select_one(*conditions))

    async def position(self, ticket_id: int) -> int:
        """The ticket's place in the queue: open tickets up to and including it."""

        def work() -> int:
            query = select(func.count()).select_from(tickets).where(tickets.c.status == Status.OPEN.value, tickets.c.id <= ticket_id)
            with self._store.engine.connect() as connection:
                return int(connection.execute(query).scalar() or 0)

        return await self._store.run(work)

    async def queue_length(self) -> int:
        """Open tickets nobody has claimed (`/metrics`)."""

        def work() -> int:
            query = select(func.count()).select_from(tickets).where(tickets.c.status == Status.OPEN.value)
            with self._store.engine.connect() as connection:
                return int(connection.execute(query).scalar() or 0)

        return await self._store.run(work)

    async def unclaimed_since(self, cutoff: datetime) -> list[Ticket]:
        """Open tickets created before `cutoff` whose fan has not had the timeout notice."""
        return await self._store.run(
            lambda: self._select_all(
                tickets.c.status == Status.OPEN.value, tickets.c.timeout_notified == False, tickets.c.created_at < cutoff  # noqa: E712
            )
        )

    async def silent_since(self, cutoff: datetime) -> list[Ticket]:
        """Claimed tickets whose moderator has not written since before `cutoff`, not yet notified."""
        quiet = func.coalesce(tickets.c.last_moderator_reply_at, tickets.c.claimed_at)
        return await self._store.run(
            lambda: self._select_all(
                tickets.c.status == Status.CLAIMED.value, tickets.c.silence_notified == False, quiet < cutoff  # noqa: E712
            )
        )

    async def released_untold(self) -> list[Ticket]:
        """Open tickets the operator released whose fan and desk have not been told yet."""
        return await self._store.run(
            lambda: self._select_all(tickets.c.status == Status.OPEN.value, tickets.c.release_notice == True)  # noqa: E712
        )

    async def open(
        self, fan: str, conversation: str, route: Address, reason: str, at: datetime, history: int
    ) -> Opened:
        """Writes a new open ticket and gets what its packet needs; returns once it is committed.

        Returns the ticket, the fan's last `history` turns and when they were told it is an AI
        (from memory when the store holds the fan's recent turns, see `RecentTurns`).
        """
        return await self._openings.submit(_Opening(fan, conversation, route, reason, at, history))

    def _open_group(self, openings: list[_Opening]) -> list[Opened]:
        """Store thread: every ticket opened meanwhile, in one transaction (a fan who has an
        active ticket, opened by any process, keeps it), each one's place in the queue, then
        each new packet's history (from memory, or read on the same connection)."""
        fans = {opening.fan for opening in openings}
        with self._store.engine.connect() as connection:
            with connection.begin():
                self._store.forget_erased_elsewhere((opening.fan for opening in openings), connection)
                had = _active_rows(connection, fans)
                fresh: list[_Opening] = []
                for opening in openings:  # one row per fan without an active ticket
                    if opening.fan not in had and all(opening.fan != other.fan for other in fresh):
                        fresh.append(opening)
                self._store.hold_keys((opening.fan for opening in fresh), create=True)  # one transaction for all
                rows = []
                for opening in fresh:
                    key = self._store.data_key(opening.fan, create=True)
                    assert key is not None
                    rows.append(
                        {
                            "fan": opening.fan, "conversation": opening.conversation, "platform": opening.route.platform,
                            "route": crypto.encrypt(key, json.dumps(opening.route.__dict__, sort_keys=True)),
                            "status": Status.OPEN.value, "reason": opening.reason, "created_at": opening.at,
                            "timeout_notified": False, "silence_notified": False,
                        }
                    )
                ids = dict(zip((o.fan for o in fresh), _insert(connection, rows) if rows else []))
                for opening in fresh:  # recorded where the ticket is decided: once, by whichever process opened it
                    events.add(connection, events.HANDOFF_OPENED, events.epoch(opening.at), platform=opening.route.platform, reason=opening.reason)
                # Read again only when a fan opens twice in the group, or a rival's row made ours skip.
                again = len(fresh) < len(openings) - sum(o.fan in had for o in openings) or None in ids.values()
                current = _active_rows(connection, fans) if again else had
                queue = list(connection.execute(select(tickets.c.id).where(tickets.c.status == Status.OPEN.value).order_by(tickets.c.id)).scalars())
            opened: list[Opened] = []
            for o in openings:
                ticket_id = ids.pop(o.fan, None)  # the first opening of a fan in the group got the row
                if ticket_id is None:  # the fan's active ticket stands
                    ticket = self._ticket(current[o.fan])
                    opened.append(Opened(ticket, [], None, False, bisect_right(queue, ticket.id)))
                    continue
                ticket = Ticket(ticket_id, o.fan, o.conversation, o.route.platform, o.route, Status.OPEN, o.reason, None, None, o.at, False)
                turns_, disclosed = self._store.recent_history(o.fan, o.history, connection)
                opened.append(Opened(ticket, turns_, disclosed, True, bisect_right(queue, ticket_id)))
            return opened

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
        `IllegalTransition` for an illegal move or when a rival changed the ticket first.

        The update is conditional on the status (and, for a move by the holder, on the
        holder) the caller saw, so of two moves racing from any number of processes exactly
        one wins. Closing a ticket of a fan with `/privacy off` deletes, in the same
        transaction, the relayed messages and moderator replies stored for that handoff."""
        target = next_status(ticket.status, action)
        values: dict[str, Any] = {"status": target.value, "release_notice": action is Action.RELEASE}
        if action in (Action.CLAIM, Action.TRANSFER, Action.TAKEOVER):
            values.update(
                moderator=moderator, moderator_name=moderator_name, claimed_at=at,
                last_moderator_reply_at=None, silence_notified=False,
            )
        elif action in (Action.UNCLAIM, Action.RELEASE):
            values.update(moderator=None, moderator_name=None, claimed_at=None, last_moderator_reply_at=None, silence_notified=False)
        if target not in ACTIVE:
            values["closed_at"] = at
        conditions = [tickets.c.id == ticket.id, tickets.c.status == ticket.status.value]
        if ticket.status is Status.CLAIMED:  # a move of a claimed ticket: still held by whom the caller saw
            conditions.append(tickets.c.moderator == ticket.moderator)

        detail: dict[str, Any] = {"ticket": ticket.id}
        if action in (Action.TRANSFER, Action.TAKEOVER):
            detail["to"] = moderator

        def move_and_audit() -> tuple[int, bool]:
            """The move and its audit record commit together, or neither does."""
            with self._store.engine.begin() as connection:
                changed = connection.execute(update(tickets).where(*conditions).values(**values)).rowcount
                forgotten = bool(changed) and target in (Status.RESOLVED, Status.CANCELLED) and bool(self._forget_handoff_if_private(connection, ticket))
                if changed:
                    self._store.audit_log.record(f"ticket_{_PAST[action]}", actor, detail, at=at, connection=connection)
                    _record_move(connection, ticket, action, at)
            return changed, forgotten

        def work() -> Ticket:
            for attempt in range(APPEND_ATTEMPTS):  # another process appended to the audit log at once
                try:
                    changed, forgotten = move_and_audit()
                    break
                except IntegrityError:
                    time.sleep(min(0.001 * (attempt + 1), 0.05))
            else:
                raise IllegalTransition(f"ticket {ticket.id} could not be moved: the audit log stayed busy")
            if forgotten:
                self._store.forget_recent(ticket.fan)  # the packet cache must not keep what was just deleted
                self._store.scrub_files()  # nor the SQLite WAL
            if not changed:
                current = self._select_one(tickets.c.id == ticket.id)
                state = current.status.value if current else "erased"
                raise IllegalTransition(f"ticket {ticket.id} changed meanwhile: it is {state} now")
            return replace(
                ticket,
                status=target,
                moderator=values.get("moderator", ticket.moderator),
                moderator_name=values.get("moderator_name", ticket.moderator_name),
                claimed_at=values.get("claimed_at", ticket.claimed_at),
                last_moderator_reply_at=values.get("last_moderator_reply_at", ticket.last_moderator_reply_at),
                silence_notified=values.get("silence_notified", ticket.silence_notified),
            )

        return await self._store.run(work)

    @staticmethod
    def _forget_handoff_if_private(connection: Connection, ticket: Ticket) -> int:
        """`/privacy off`: a handoff keeps the fan's relayed messages and the moderator's
        replies (redacted) only while the ticket is open; they go when it closes."""
        logging_on = connection.execute(select(preferences.c.logging_enabled).where(preferences.c.fan == ticket.fan)).scalar()
        if logging_on is None or logging_on:
            return 0
        return int(
            connection.execute(
                delete(turns).where(
                    turns.c.fan == ticket.fan, turns.c.kind.in_(HANDOFF_KINDS), turns.c.at >= ticket.created_at
                )
            ).rowcount
        )

    async def pending_removals(self, queued_before: datetime, limit: int = 500) -> list[DeskPost]:
        """Desk messages queued for deletion (by an erasure or retention) before `queued_before`."""

        def work() -> list[DeskPost]:
            query = select(desk_removals).where(desk_removals.c.queued_at < queued_before).order_by(desk_removals.c.id).limit(limit)
            with self._store.engine.connect() as connection:
                return [DeskPost(r["ticket"], r["desk"], r["channel"], r["message"]) for r in connection.execute(query).mappings()]

        return await self._store.run(work)

    async def drop_removals(self, posts: Sequence[DeskPost]) -> None:
        """The desk has acted on these queued deletions."""

        def work() -> None:
            with self._store.engine.begin() as connection:
                for post in posts:
                    connection.execute(
                        delete(desk_removals).where(
                            desk_removals.c.desk == post.desk, desk_removals.c.channel == post.channel,
                            desk_removals.c.message == post.message,
                        )
                    )

        await self._store.run(work)

    async def note_reply(self, ticket: Ticket, at: datetime) -> bool:
        """The holder wrote to the fan: the claimed-silence clock starts again. False when
        the ticket is no longer claimed by them (moved by another process meanwhile). The
        first reply since the claim is recorded as an event (the update that finds no earlier
        reply decides it, once)."""
        held = [tickets.c.id == ticket.id, tickets.c.status == Status.CLAIMED.value, tickets.c.moderator == ticket.moderator]
        first = events.Event(
            events.HANDOFF_FIRST_REPLY, events.epoch(at), platform=ticket.platform, reason=ticket.reason,
            seconds=(at - ticket.created_at).total_seconds(),
        )

        def work() -> bool:
            with self._store.engine.begin() as connection:
                values = {"last_moderator_reply_at": at, "silence_notified": False}
                if connection.execute(update(tickets).where(*held, tickets.c.last_moderator_reply_at.is_(None)).values(**values)).rowcount:
                    events.add(connection, **first.__dict__)
                    return True
                return bool(connection.execute(update(tickets).where(*held).values(**values)).rowcount)

        return await self._store.run(work)

    def _conditionally(self, conditions: list[ColumnElement[bool]], event: Optional[events.Event] = None, **values: Any) -> bool:
        with self._store.engine.begin() as connection:
            changed = bool(connection.execute(update(tickets).where(*conditions).values(**values)).rowcount)
            if changed and event is not None:
                events.add(connection, **event.__dict__)
            return changed

    async def claim_timeout_notice(self, ticket: Ticket, at: Optional[datetime] = None) -> bool:
        """True for exactly one caller, in any number of processes: the one whose
        conditional update marked the unclaimed ticket's timeout as notified."""
        return await self._store.run(
            lambda: self._conditionally(
                [tickets.c.id == ticket.id, tickets.c.status == Status.OPEN.value, tickets.c.timeout_notified == False],  # noqa: E712
                events.Event(
                    events.HANDOFF_TIMEOUT, events.epoch(at) if at else time.time(), platform=ticket.platform, reason=ticket.reason,
                    seconds=(at - ticket.created_at).total_seconds() if at else None,
                ),
                timeout_notified=True,
            )
        )

    async def claim_release_notice(self, ticket: Ticket) -> bool:
        """True for exactly one caller: the one that tells the fan and desk of a release."""
        return await self._store.run(
            lambda: self._conditionally(
                [tickets.c.id == ticket.id, tickets.c.status == Status.OPEN.value, tickets.c.release_notice == True],  # noqa: E712
                release_notice=False,
            )
        )

    async def claim_silence_notice(self, ticket: Ticket) -> bool:
        """True for exactly one caller, in any number of processes: the one whose
        conditional update marked the silent claim as notified."""
        return await self._store.run(
            lambda: self._conditionally(
                [
                    tickets.c.id == ticket.id, tickets.c.status == Status.CLAIMED.value,
                    tickets.c.moderator == ticket.moderator, tickets.c.silence_notified == False,  # noqa: E712
                ],
                silence_notified=True,
            )
        )

    async def get(self, ticket_id: int) -> Optional[Ticket]:
        """The ticket as stored now (any status); None once erased or purged."""
        return await self._store.run(lambda: self._select_one(tickets.c.id == ticket_id))

    # Desk locations ----------------------------------------------------------------------

    async def place(self, ticket_id: int, location: DeskLocation) -> None:
        """Stores where the ticket's packet went (called once, when it is posted)."""

        def work() -> None:
            with self._store.engine.begin() as connection:
                connection.execute(
                    update(tickets).where(tickets.c.id == ticket_id).values(
                        desk=location.desk, desk_channel=location.channel, desk_thread=location.thread, desk_message=location.message
                    )
                )

        await self._store.run(work)

    async def at_thread(self, desk: str, channel: str, thread: str) -> Optional[Ticket]:
        """The ticket whose desk thread this is, whatever its status; None when no stored
        ticket lives there (erased, purged, or not a ticket thread)."""
        return await self._store.run(
            lambda: self._select_one(tickets.c.desk == desk, tickets.c.desk_channel == channel, tickets.c.desk_thread == thread)
        )

    async def at_message(self, desk: str, channel: str, message: str) -> Optional[Ticket]:
        """The ticket whose packet (the message carrying its buttons) this is."""
        return await self._store.run(
            lambda: self._select_one(tickets.c.desk == desk, tickets.c.desk_channel == channel, tickets.c.desk_message == message)
        )

    async def posted(self, posts: list[DeskPost], at: datetime) -> list[DeskPost]:
        """Records desk messages posted about tickets, so an erasure can remove them.
        Returns the posts whose ticket is gone already (erased meanwhile): the desk removes
        those at once instead."""

        def work() -> list[DeskPost]:
            orphans = []
            with self._store.engine.begin() as connection:
                for post in posts:
                    alive = select(tickets.c.id).where(tickets.c.id == post.ticket)
                    values = (
                        literal(post.ticket, Integer()), literal(post.desk, String()), literal(post.channel, String()),
                        literal(post.message, String()), literal(at, DateTime()),
                    )
                    inserted = connection.execute(
                        insert(desk_posts).from_select(
                            ["ticket", "desk", "channel", "message", "posted_at"], select(*values).where(exists(alive))
                        )
                    ).rowcount
                    if not inserted:
                        orphans.append(post)
            return orphans

        return await self._store.run(work)

    async def posts_of(self, ticket_id: int) -> list[DeskPost]:
        def work() -> list[DeskPost]:
            with self._store.engine.connect() as connection:
                rows = connection.execute(select(desk_posts).where(desk_posts.c.ticket == ticket_id).order_by(desk_posts.c.id)).mappings()
                return [DeskPost(r["ticket"], r["desk"], r["channel"], r["message"]) for r in rows]

        return await self._store.run(work)

    async def listing(self, active_only: bool = True) -> list[Ticket]:
        def work() -> list[Ticket]:
            query = select(tickets).order_by(tickets.c.id)
            if active_only:
                query = query.where(tickets.c.status.in_(ACTIVE_VALUES))
            with self._store.engine.connect() as connection:
                return [self._ticket(dict(row)) for row in connection.execute(query).mappings().all()]

        return await self._store.run(work)


#: Moves that are a step of the report's handoff figures: the event kind, timed from the opening.
_TIMED_MOVES = {Action.CLAIM: events.HANDOFF_CLAIMED, Action.RESOLVE: events.HANDOFF_RESOLVED, Action.CANCEL: events.HANDOFF_CANCELLED}


def _record_move(connection: Connection, ticket: Ticket, action: Action, at: datetime) -> None:
    """In the move's own transaction: a claim from the queue, a resolution or a cancellation,
    with the seconds since the ticket was opened (a cancellation's reason: the status it left)."""
    kind = _TIMED_MOVES.get(action)
    if kind is not None:
        reason = ticket.status.value if action is Action.CANCEL else ticket.reason
        seconds = (at - ticket.created_at).total_seconds()
        events.add(connection, kind, events.epoch(at), platform=ticket.platform, reason=reason, seconds=seconds)


def _active_rows(connection: Connection, fans: set[str]) -> dict[str, dict[str, Any]]:
    """Each of these fans' one active ticket row (the unique index allows no second)."""
    query = select(tickets).where(tickets.c.fan.in_(fans), tickets.c.status.in_(ACTIVE_VALUES))
    return {row["fan"]: dict(row) for row in connection.execute(query).mappings()}


def _insert(connection: Connection, rows: list[dict[str, Any]]) -> list[Optional[int]]:
    """Inserts ticket rows in one statement, skipping a fan who has an active ticket already
    (the unique partial index decides, whichever process inserted it); returns each row's id,
    None for a skipped row (as told by RETURNING, not guessed), taken from the database's
    own never-reusing counter: SQLite's AUTOINCREMENT sequence (`sqlite_sequence`, which an
    explicit larger id advances; the store thread is SQLite's only writer), PostgreSQL's
    serial sequence. Never max(id) + 1, which hands an erased newest number out again."""
    backend = connection.dialect.name
    if backend == "sqlite":
        sequence = connection.execute(text("SELECT seq FROM sqlite_sequence WHERE name = 'tickets'")).scalar() or 0
        last = max(int(sequence), int(connection.execute(select(func.max(tickets.c.id))).scalar() or 0))
        ids = list(range(int(last) + 1, int(last) + 1 + len(rows)))
    elif backend == "postgresql":
        ids = sorted(
            connection.execute(
                text("SELECT nextval(pg_get_serial_sequence('tickets', 'id')) FROM generate_series(1, :n)"), {"n": len(rows)}
            ).scalars()
        )
    else:  # any other database: one insert per ticket, still in one transaction
        return [connection.execute(insert(tickets).values(**row)).inserted_primary_key[0] for row in rows]  # type: ignore[index]  # an executed INSERT always has its key
    skipping = dialect_insert(connection)(tickets).on_conflict_do_nothing(index_elements=[tickets.c.fan], index_where=_ACTIVE_WHERE)
    inserted = set(connection.execute(skipping.returning(tickets.c.id), [dict(row, id=ticket_id) for row, ticket_id in zip(rows, ids)]).scalars())
    return [ticket_id if ticket_id in inserted else None for ticket_id in ids]
