"""Handoff to people: the fan's side (start, relay, cancel) and the desk's (claim, reply,
unclaim, resolve), plus claim timeouts. Everything returns `Outgoing` messages; where the
desk is (console, a Slack or Discord channel) is the connector's business.

Nothing about tickets is kept in this process: a fan's active ticket, the queue and the due
notices are read from the database on each use, and every move and notice is a conditional
update there, so any number of bot processes on one store act as one desk.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, Optional

from bot.config import HandoffSettings
from bot.handoff.actions import DEFAULT_NAME, Claim, ModeratorAction, Reply, Resolve, Takeover, Transfer, Unclaim
from bot.handoff.desk import DeskCopies, Removal
from bot.handoff.locations import DeskPost
from bot.handoff.states import Action, IllegalTransition, Status
from bot.handoff.ticket_store import Ticket, TicketStore
from bot.messages import Address, Kind, Outgoing
from bot.privacy.pseudonym import Pseudonymizer
from bot.privacy.store import TranscriptStore, Turn
from bot.transcript import minimized

REASONS = {
    "asked": "the fan asked for a person",
    "repeated_fallbacks": "the assistant could not answer twice in a row",
    "complaint": "the fan complained",
    "harassment": "the fan reported harassment",
}
logger = logging.getLogger(__name__)


class Handoff:
    def __init__(
        self,
        settings: HandoffSettings,
        store: TranscriptStore,
        pseudonyms: Pseudonymizer,
        clock: Callable[[], datetime],
    ) -> None:
        self._settings = settings
        self._store = store
        self._tickets = TicketStore(store)
        self._pseudonyms = pseudonyms
        self._clock = clock
        self._desk_copies: Optional[DeskCopies] = None

    @property
    def tickets(self) -> TicketStore:
        return self._tickets

    @property
    def settings(self) -> HandoffSettings:
        return self._settings

    def use_desk_copies(self, desk: Optional[DeskCopies]) -> None:
        """The desk that removes a fan's desk messages on erasure (wired by whoever runs
        the desk); None: nothing can be removed from here (e.g. `bot forget`)."""
        self._desk_copies = desk

    async def remove_desk_copies(self, posts: Sequence[DeskPost], actor: str = "fan") -> Removal:
        """Erasure: every desk message posted about the fan's tickets is deleted (or, where
        it cannot be, edited to "[erased at the fan's request]"); what could not be deleted
        is audited, counts only."""
        if not posts:
            return Removal()
        if self._desk_copies is None:
            outcome = Removal(failed=len(posts))
        else:
            try:
                outcome = await self._desk_copies.remove(posts)
            except Exception as error:  # the erasure itself is done; the desk was not reached
                # Left queued (not dropped, not audited as left): whoever runs the desk tries
                # again (`remove_pending_desk_copies`), instead of the copies staying for good.
                logger.warning("removing desk copies failed (%s); they stay queued and are tried again", type(error).__name__)
                return Removal(pending=len(posts))
        if outcome.left:
            await self._store.audit("desk_copies_left", actor, {"edited": outcome.edited, "not_removed": outcome.failed})
        if self._desk_copies is not None:
            await self._tickets.drop_removals(posts)  # acted on: deleted, edited, or recorded as left
        return outcome

    async def remove_pending_desk_copies(self, min_age_seconds: float = 60.0) -> Removal:
        """Deletes the desk messages queued by an erasure this process did not finish at the
        desk (`bot forget`, a crash) or by retention; run periodically by whoever runs the desk.
        Only rows older than `min_age_seconds`, so a `/forget-me` being handled now is left to itself."""
        if self._desk_copies is None:
            return Removal()
        posts = await self._tickets.pending_removals(self._clock() - timedelta(seconds=min_age_seconds))
        if not posts:
            return Removal()
        return await self.remove_desk_copies(posts, actor="operator")

    # Reads: always the database's answer -----------------------------------------------

    async def find(self, ticket_id: Optional[int]) -> Optional[Ticket]:
        """An active ticket by number, or (None) the newest active one: the desk's "last"."""
        return await self._tickets.active(ticket_id)

    async def _position(self, ticket: Ticket) -> int:
        return await self._tickets.position(ticket.id)

    # The fan's side -----------------------------------------------------------------

    async def active(self, fan: str) -> Optional[Ticket]:
        """The fan's active ticket, whichever process opened it."""
        return await self._tickets.active_of(fan)

    async def start(
        self, fan: str, conversation: str, address: Address, reason: str, disclosing_now: bool = False
    ) -> list[Outgoing]:
        opened = await self._tickets.open(fan, conversation, address, reason, self._clock(), self._settings.history_turns)
        ticket, disclosed = opened.ticket, opened.disclosed
        if not opened.new:  # the fan's active ticket stands, whichever process opened it
            return [await self._started(ticket, again=True, place=opened.place)]
        if disclosed is None and disclosing_now:  # the disclosure goes out with this very reply
            disclosed = ticket.created_at
        return [await self._started(ticket, place=opened.place), self._packet(ticket, opened.turns, disclosed)]

    async def _started(self, ticket: Ticket, again: bool = False, place: Optional[int] = None) -> Outgoing:
        if ticket.status is Status.CLAIMED:
            text = f"You're already talking with {ticket.moderator_name or DEFAULT_NAME.lower()}, a human moderator."
        else:
            place = place or await self._position(ticket)
            opening = "You're already in the queue for a person" if again else "I've asked a human moderator to take over"
            text = (
                f"{opening} (ticket #{ticket.id}, place {place} in the queue). I won't answer while you wait: "
                "what you write now goes to the moderators. /human cancel brings you back to me; "
                "/forget-me, /privacy, /my-data and /why still work."
            )
        return Outgoing(Kind.HANDOFF_STARTED, text, ticket=str(ticket.id))

    @staticmethod
    def _packet(ticket: Ticket, turns: list[dict[str, Any]], disclosed: Optional[datetime]) -> Outgoing:
        turns = [turn for turn in turns if turn["kind"] != "disclosure"]
        lines = [
            f"Ticket #{ticket.id} · fan on {ticket.platform} · why: {REASONS.get(ticket.reason, ticket.reason)}",
            "AI disclosure shown: "
            + (disclosed.isoformat(sep=" ", timespec="seconds") + " UTC" if disclosed else "not in the stored history"),
            f"Last {len(turns)} turn(s), personal data redacted:",
            *[f"  {turn['role']}: {turn['text']}" for turn in turns],
            "Desk commands (\"!\" on Slack and Discord, \"/\" on the console): claim [your display name]; reply in plain text; "
            "unclaim, transfer MODERATOR [name], takeover [name] or resolve.",
        ]
        return Outgoing(Kind.HANDOFF_TICKET, "\n".join(lines), to="desk", ticket=str(ticket.id))

    async def relay(self, ticket: Ticket, text: str, attachments: int) -> list[Outgoing]:
        """A fan message during a handoff goes to the desk; kept (redacted) even with /privacy off."""
        # Queued, not awaited: the store keeps it in order with everything else (see submit).
        self._store.submit(
            Turn(ticket.fan, ticket.conversation, "fan", Kind.HANDOFF_RELAY.value, self._clock(), minimized(text, attachments))
        )
        note = f" (+{attachments} attachment(s), not forwarded)" if attachments else ""
        return [Outgoing(Kind.HANDOFF_RELAY, f"#{ticket.id} fan: {text}{note}", to="desk", ticket=str(ticket.id))]

    async def cancel(self, fan: str) -> list[Outgoing]:
        ticket = await self.active(fan)
        if ticket is None:
            return [Outgoing(Kind.REFUSED, "There is no open request for a person to cancel.")]
        try:
            await self._tickets.move(ticket, Action.CANCEL, self._clock(), "fan")
        except IllegalTransition:  # closed by the desk meanwhile
            return [Outgoing(Kind.REFUSED, "There is no open request for a person to cancel.")]
        return [
            Outgoing(Kind.HANDOFF_RESOLVED, "OK, I've closed your request: you're back with the AI assistant.", ticket=str(ticket.id)),
            Outgoing(Kind.HANDOFF_RESOLVED, f"Ticket #{ticket.id} was cancelled by the fan.", to="desk", ticket=str(ticket.id)),
        ]

    def erased(self, ticket_ids: tuple[int, ...]) -> list[Outgoing]:
        return [
            Outgoing(Kind.HANDOFF_RESOLVED, f"Ticket #{number} was erased at the fan's request.", to="desk", ticket=str(number))
            for number in ticket_ids
        ]

    # The desk's side ----------------------------------------------------------------

    async def moderate(self, act: ModeratorAction) -> list[Outgoing]:
        """One typed desk action; the desk has already decided `authorised` by its own rule."""
        if not act.authorised:
            return [self._to_desk(Kind.REFUSED, "Only moderators can act on tickets.", act.ticket)]
        ticket = await self.find(act.ticket)
        if ticket is None:
            what = f"ticket #{act.ticket}" if act.ticket is not None else "an active ticket"
            return [self._to_desk(Kind.REFUSED, f"There is no {what} to act on: it is closed or erased.", act.ticket)]
        moderator = self._pseudonyms.moderator(self._settings.desk, act.moderator_id)
        action = act.action
        try:
            if isinstance(action, Claim):
                return await self._claim(ticket, moderator, action.name or DEFAULT_NAME)
            if isinstance(action, Takeover):
                return await self._takeover(ticket, moderator, action.name or DEFAULT_NAME)
            if isinstance(action, Reply):
                return await self._reply(ticket, moderator, action.text.strip())
            if ticket.moderator != moderator:
                return [self._to_desk(Kind.REFUSED, f"Ticket #{ticket.id} is not claimed by you.", ticket.id)]
            if isinstance(action, Transfer):
                return await self._transfer(ticket, moderator, action)
            if isinstance(action, Unclaim):
                return await self._unclaim(ticket, moderator)
            assert isinstance(action, Resolve)
            return await self._resolve(ticket, moderator)
        except IllegalTransition as error:
            return [self._to_desk(Kind.REFUSED, f"Ticket #{ticket.id}: {error}.", ticket.id)]

    async def _claim(self, ticket: Ticket, moderator: str, name: str) -> list[Outgoing]:
        claimed = await self._tickets.move(ticket, Action.CLAIM, self._clock(), moderator, moderator, name)
        return [
            self._to_fan(claimed, Kind.MODERATOR_JOINED, f"{name}, a human moderator, has joined. You're talking with a person now, not the AI."),
            self._to_desk(Kind.MODERATOR_JOINED, f"You claimed ticket #{ticket.id} as {name}.", ticket.id),
        ]

    async def _takeover(self, ticket: Ticket, moderator: str, name: str) -> list[Outgoing]:
        """`!takeover [name]`: explicit, audited (ticket_taken_over); the previous holder is
        told in the ticket's thread, where they work."""
        if ticket.status is not Status.CLAIMED:
            return [self._to_desk(Kind.REFUSED, f"Ticket #{ticket.id} is not claimed: claim it instead.", ticket.id)]
        if ticket.moderator == moderator:
            return [self._to_desk(Kind.REFUSED, f"Ticket #{ticket.id} is already yours.", ticket.id)]
        previous = ticket.moderator_name or DEFAULT_NAME
        moved = await self._tickets.move(ticket, Action.TAKEOVER, self._clock(), moderator, moderator, name)
        return [
            self._to_fan(moved, Kind.MODERATOR_JOINED, f"{name}, another human moderator, is taking over your conversation."),
            self._to_desk(
                Kind.MODERATOR_JOINED,
                f"{name} took over ticket #{ticket.id} from {previous}; {previous}'s replies no longer reach the fan.",
                ticket.id,
            ),
        ]

    async def _transfer(self, ticket: Ticket, moderator: str, transfer: Transfer) -> list[Outgoing]:
        """Hands a claimed ticket to another moderator, whom the desk has authorised."""
        if not transfer.target or not transfer.target_authorised:
            return [self._to_desk(Kind.REFUSED, "Transfer to a moderator of this desk: transfer MODERATOR [display name].", ticket.id)]
        target = self._pseudonyms.moderator(self._settings.desk, transfer.target)
        display = transfer.name.strip()[:64] or DEFAULT_NAME
        moved = await self._tickets.move(ticket, Action.TRANSFER, self._clock(), moderator, target, display)
        return [
            self._to_fan(moved, Kind.MODERATOR_JOINED, f"{display}, another human moderator, is taking over your conversation."),
            self._to_desk(Kind.MODERATOR_JOINED, f"Ticket #{ticket.id} transferred to {display}.", ticket.id),
        ]

    async def _unclaim(self, ticket: Ticket, moderator: str) -> list[Outgoing]:
        reopened = await self._tickets.move(ticket, Action.UNCLAIM, self._clock(), moderator)
        place = await self._position(reopened)
        return [
            self._to_fan(reopened, Kind.HANDOFF_STARTED, f"The moderator had to step away; you're back in the queue (place {place}). Another person will pick this up."),
            self._to_desk(Kind.HANDOFF_TICKET, f"Ticket #{ticket.id} is back in the queue.", ticket.id),
        ]

    async def _resolve(self, ticket: Ticket, moderator: str) -> list[Outgoing]:
        resolved = await self._tickets.move(ticket, Action.RESOLVE, self._clock(), moderator)
        return [
            self._to_fan(resolved, Kind.HANDOFF_RESOLVED, "The moderator has closed this conversation. You're back with the AI assistant; /human brings a person back any time."),
            self._to_desk(Kind.HANDOFF_RESOLVED, f"Ticket #{ticket.id} resolved.", ticket.id),
        ]

    async def _reply(self, ticket: Ticket, moderator: str, text: str) -> list[Outgoing]:
        if ticket.status is not Status.CLAIMED:
            return [self._to_desk(Kind.REFUSED, f"Claim ticket #{ticket.id} first (claim [name]).", ticket.id)]
        if ticket.moderator != moderator:
            return [self._to_desk(Kind.REFUSED, f"Ticket #{ticket.id} is claimed by another moderator.", ticket.id)]
        if not text:
            return [self._to_desk(Kind.REFUSED, "An empty reply was not sent.", ticket.id)]
        now = self._clock()
        self._store.submit(Turn(ticket.fan, ticket.conversation, "moderator", Kind.MODERATOR_REPLY.value, now, minimized(text)))
        if not await self._tickets.note_reply(ticket, now):  # moved elsewhere between the read and now
            return [self._to_desk(Kind.REFUSED, f"Ticket #{ticket.id} changed meanwhile: your reply was not sent.", ticket.id)]
        return [self._to_fan(ticket, Kind.MODERATOR_REPLY, f"{ticket.moderator_name or DEFAULT_NAME} (human moderator): {text}", from_ai=False)]

    # Timeouts -------------------------------------------------------------------------

    async def expire(self) -> list[Outgoing]:
        """Due notices, each once: tickets nobody claimed in time (the fan is told what they
        can do), claimed tickets whose moderator went silent (the desk and the fan), and
        tickets the operator released from another process (`bot handoff release`)."""
        notices = await self._released_elsewhere()
        now = self._clock()
        cutoff = now - timedelta(minutes=self._settings.claim_timeout_minutes)
        for ticket in await self._tickets.unclaimed_since(cutoff):
            if not await self._tickets.claim_timeout_notice(ticket, now):
                continue  # another process told them, or the ticket moved meanwhile
            notices.append(
                self._to_fan(
                    ticket,
                    Kind.HANDOFF_TIMEOUT,
                    f"No moderator has picked up ticket #{ticket.id} in {self._settings.claim_timeout_minutes:g} minutes, "
                    "sorry. You can keep waiting (you keep your place), type /human cancel to go back to the AI "
                    "assistant, or leave a message here: the moderators will read it when they pick it up.",
                )
            )
        return notices + await self._silent_claims(now)

    async def _silent_claims(self, now: datetime) -> list[Outgoing]:
        """Claimed tickets without a moderator reply for `claimed_silence_minutes`: one
        notice each, even with several processes checking (a conditional update decides)."""
        minutes = self._settings.claimed_silence_minutes
        cutoff = now - timedelta(minutes=minutes)
        notices: list[Outgoing] = []
        for ticket in await self._tickets.silent_since(cutoff):
            if not await self._tickets.claim_silence_notice(ticket):
                continue
            name = ticket.moderator_name or DEFAULT_NAME
            notices += [
                self._to_fan(
                    ticket, Kind.HANDOFF_TIMEOUT,
                    f"{name} hasn't written for {minutes:g} minutes, sorry. I've asked the other moderators to take over; "
                    "you can keep waiting, or type /human cancel to go back to the AI assistant.",
                ),
                self._to_desk(
                    Kind.HANDOFF_TIMEOUT,
                    f"Ticket #{ticket.id}: no reply from {name} for {minutes:g} minutes. Another moderator can take it "
                    "over with takeover [name] (\"!takeover\" on Slack and Discord).",
                    ticket.id,
                ),
            ]
        return notices

    async def _released_elsewhere(self) -> list[Outgoing]:
        """Tickets the operator put back in the queue (`bot handoff release`, another
        process): the fan and the desk are told by whichever process clears the mark."""
        notices: list[Outgoing] = []
        for ticket in await self._tickets.released_untold():
            if not await self._tickets.claim_release_notice(ticket):
                continue
            place = await self._position(ticket)
            notices += [
                self._to_fan(ticket, Kind.HANDOFF_STARTED, f"The moderator had to step away; you're back in the queue (place {place}). Another person will pick this up."),
                self._to_desk(Kind.HANDOFF_TICKET, f"Ticket #{ticket.id} was released by the operator: it is back in the queue.", ticket.id),
            ]
        return notices

    async def release(self, ticket_id: int) -> Ticket:
        """The operator puts a claimed ticket back in the queue (`bot handoff release N`);
        audited as ticket_released. Raises `IllegalTransition` when it is not claimed."""
        ticket = await self._tickets.get(ticket_id)
        if ticket is None:
            raise IllegalTransition(f"there is no ticket #{ticket_id}")
        return await self._tickets.move(ticket, Action.RELEASE, self._clock(), "operator")

    # Helpers --------------------------------------------------------------------------

    @staticmethod
    def _to_fan(ticket: Ticket, kind: Kind, text: str, from_ai: bool = True) -> Outgoing:
        return Outgoing(kind, text, ticket=str(ticket.id), from_ai=from_ai, recipient=ticket.route)

    @staticmethod
    def _to_desk(kind: Kind, text: str, ticket: Optional[int]) -> Outgoing:
        return Outgoing(kind, text, to="desk", ticket=None if ticket is None else str(ticket))
