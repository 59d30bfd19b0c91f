"""`[privacy] consent`: "notice" (the default: the disclosure says transcripts are kept and
`/privacy off` stops it) or "opt-in" (nothing about a fan is stored until they say yes).

Under opt-in, a fan without a recorded "yes" gets answers as usual, but no turn, conversation
row, data key, preference or rating is written: their conversation state lives in this
process's memory only (`held`), dropped after the idle limit, on a yes (the state moves to the
database with that message) and on `/forget-me`. A fan who withdraws (`/privacy off`) goes on
from the conversation's stored state, read but no longer written. Held state is per process:
with several workers, a not-consenting fan's next message on another worker starts afresh
(the disclosure again), the price of keeping nothing. The consent question is asked once per fan
and process (remembering that it was asked would itself be storing something). It stays
answerable until answered: a yes or no right after it is the answer; once the fan has written
something else, the question has lapsed as a pending one, and a bare yes or no that answers no
other question of the assistant's is met with the consent question again ("if that was meant
for my question about storage"), whose next yes or no is the answer. Consent is not inferred
from a yes several messages later; it is asked for again, once, at the moment the fan seems to
give it. The question's Yes / No buttons answer it directly while no answer is recorded; an old
button clicked afterwards is told what is recorded and how to change it, and changes nothing.
The answer, its time and the version of the notice shown are recorded in `consents` and changed
by `/privacy on|off`. A handoff (`/human`) is the fan's own request and is served before consent:
the ticket is stored, as the handoff notice says.

Under "notice", `/privacy on|off` changes the logging preference only; no consent is recorded
(the legal basis there is not consent, see `bot.privacy.notice`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Optional

from sqlalchemy import select

from bot.conversation import ConversationState
from bot.privacy.events import Event, conversation_id
from bot.privacy.schema import consents, dialect_insert
from bot.privacy.store import TranscriptStore

#: Reply events held in memory per not-consenting conversation (a bound, not a policy).
HELD_EVENTS = 200
QUESTION_TEXT = (
    "Before I keep anything about you: may I store minimized, encrypted copies of our messages, your "
    "privacy choices and your ratings of my answers (see /privacy for who, why and how long)? "
    "Say yes or no (or type /privacy on or /privacy off). Until you say yes I keep nothing, and I answer either way."
)
AGAIN_TEXT = "If that was meant for my question about storing your data, here it is again. "
NOT_ASKED_TEXT = "Nothing to answer there: storage here does not wait for consent (/privacy explains; /privacy off stops it)."
YES_TEXT = "Thank you: from now on I keep minimized, encrypted copies of our messages. /privacy off withdraws this at any time."
NO_TEXT = (
    "Understood: from now on I keep nothing about our conversation (anything stored earlier stays until it expires or you "
    "type /forget-me). I still answer you; /privacy on if you change your mind."
)



def recorded_text(choice: str) -> str:
    """An old consent button clicked after the answer was recorded."""
    change = "/privacy off withdraws it" if choice == "yes" else "/privacy on agrees instead"
    return f"Your answer is already recorded: {choice}. Nothing changed; {change}."


class Consent:
    def __init__(self, store: TranscriptStore, mode: str, notice_version: str, idle_seconds: float,
                 clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self.opt_in = mode == "opt-in"
        self._version = notice_version
        self._idle = idle_seconds
        self._clock = clock
        #: conversation pseudonym -> (fan, state, last seen): not-yet-consented fans only.
        self._held: dict[str, tuple[str, ConversationState, float]] = {}
        self._asked: set[str] = set()
        #: conversation pseudonym -> the reply events held with its state (`bot.privacy.events`).
        self._held_events: dict[str, tuple[Event, ...]] = {}

    async def choice(self, fan: str) -> Optional[str]:
        """"yes", "no" or None (never answered). Read per message: another process may have
        recorded it."""

        def read() -> Optional[str]:
            with self._store.engine.connect() as connection:
                return connection.execute(select(consents.c.choice).where(consents.c.fan == fan)).scalar()

        return await self._store.run(read)

    async def record(self, fan: str, yes: bool) -> None:
        values = {"choice": "yes" if yes else "no", "at": self._clock(), "notice_version": self._version}

        def work() -> None:
            with self._store.engine.begin() as connection:
                statement = dialect_insert(connection)(consents).values(fan=fan, **values)
                connection.execute(statement.on_conflict_do_update(index_elements=[consents.c.fan], set_=values))

        await self._store.run(work)
        if yes:
            self.drop(fan)

    def should_ask(self, fan: str) -> bool:
        """True once per fan (and process) while no answer is recorded."""
        if fan in self._asked:
            return False
        if len(self._asked) > 100_000:
            self._asked.clear()
        self._asked.add(fan)
        return True

    def was_asked(self, fan: str) -> bool:
        """Whether the question was asked in this process (and not dropped since)."""
        return fan in self._asked

    def held(self, fan: str, conversation: str) -> Optional[ConversationState]:
        """The in-memory state of a not-consenting fan's conversation (None when there is
        none, or it was idle too long)."""
        entry = self._held.get(conversation)
        if entry is None or entry[0] != fan or self._clock() - entry[2] > self._idle:
            return None
        return entry[1]

    def hold(self, fan: str, conversation: str, state: ConversationState) -> None:
        now = self._clock()
        self._held[conversation] = (fan, state, now)
        if len(self._held) % 256 == 0:  # bounded by recent activity
            for key, (_, _, seen) in list(self._held.items()):
                if now - seen > self._idle:
                    del self._held[key]
                    self._held_events.pop(key, None)

    def take_events(self, fan: str, conversation: str, started: float) -> tuple[Event, ...]:
        """The reply events held for this conversation (removed from memory), when they belong
        to the fan and this start of it; otherwise none (an expired conversation's are dropped)."""
        held = self._held_events.pop(conversation, ())
        session = conversation_id(conversation, started)
        return tuple(event for event in held if event.fan == fan and event.conversation == session)

    def hold_events(self, conversation: str, held: tuple[Event, ...]) -> None:
        """Keeps a not-consenting conversation's reply events with its state, at most
        `HELD_EVENTS` (the first: the disclosure is among them); dropped with the state."""
        if held and conversation in self._held:
            self._held_events[conversation] = held[:HELD_EVENTS]

    def drop(self, fan: str) -> None:
        """Forgets what memory holds about the fan (a yes moves it to the store; an erasure)."""
        for key in [k for k, (owner, _, _) in self._held.items() if owner == fan]:
            del self._held[key]
            self._held_events.pop(key, None)
        self._asked.discard(fan)
