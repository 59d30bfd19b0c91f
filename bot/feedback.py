"""Fans rate model answers: "Helpful" / "Not helpful" buttons on Slack and Discord, and
`/feedback good|bad` on every connector for the conversation's last answer (when the last reply
was a fallback or a fixed reply, it says that reply cannot be rated: rating an earlier answer
would guess at what the fan meant).

A rating is minimized: which answer (an opaque id), its intent and confidence, good or bad,
when; never the text. Button payloads come back from the platform and are untrusted, so the
rating token a button carries is signed with the pseudonym key and bound to the fan and the
conversation it was sent to: a token replayed by another fan (or forged) fails the check and
nothing is stored. It is also bound to when that conversation started: `/forget-me` deletes
the conversation's state, so a button from before an erasure fails the check afterwards and
cannot re-create a rating of an erased answer. (The same holds after the idle limit: a new
conversation has begun, and an answer from the earlier one can no longer be rated.) A second
rating of the same answer replaces the first (unique fan+answer).

Storage follows the fan's choices: with `/privacy off`, or under `consent = "opt-in"` before
the fan said yes, a rating is acknowledged but not stored, and the acknowledgement says so
(a rating is not a transcript, but it is data about what the fan asked).
"""

from __future__ import annotations

import hmac
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Optional

from bot.messages import Kind, Outgoing
from bot.privacy.pseudonym import Pseudonymizer
from bot.privacy.schema import dialect_insert, ratings
from bot.privacy.store import TranscriptStore

RATINGS = ("good", "bad")
#: intent : confidence in thousandths ("-" for none) : issued (base 36) . tag. At most 84
#: characters, so `fb:g:` + token fits Discord's 100-character custom_id.
_TOKEN = re.compile(r"^(?P<intent>[A-Za-z0-9_]{1,48}):(?P<confidence>\d{1,4}|-):(?P<answer>(?P<issued>[0-9a-z]{1,10})\.(?P<tag>[0-9a-f]{16}))$")

GOOD_TEXT = "Thanks for the feedback: I noted that this answer helped (only the rating, never the text)."
OFFER_HUMAN = " Type /human to reach a person, or rephrase your question."
BAD_TEXT = "Thanks for telling me: I noted that this answer did not help (only the rating, never the text)." + OFFER_HUMAN
NOT_KEPT_TEXT = {
    "off": "Transcript logging is off for you (/privacy off), so I did not keep this rating either. /privacy on would let it count.",
    "consent": "You have not agreed to storage (/privacy on), so I did not keep this rating.",
}
INVALID_TEXT = (
    "That rating could not be checked (it belongs to another or an earlier conversation, or was changed): nothing was stored."
)
NOTHING_TEXT = "There is no answer of mine to rate yet in this conversation: /feedback rates my last answer."
UNRATABLE_TEXT = (
    "My last reply was not an answer to a question (I did not understand, or it was a fixed reply), so it cannot be rated"
    " and nothing was stored: /feedback rates my last reply when it answered you, and on Slack and Discord the"
    " Helpful / Not helpful buttons under an earlier answer still rate that one."
)


@dataclass(frozen=True)
class RatedAnswer:
    answer: str  # the opaque id stored in `ratings.answer`
    intent: str
    confidence: Optional[float]


def _confidence_field(confidence: Optional[float]) -> str:
    return "-" if confidence is None else str(max(0, min(1000, round(confidence * 1000))))


class Feedback:
    def __init__(self, store: TranscriptStore, pseudonyms: Pseudonymizer, clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._pseudonyms = pseudonyms
        self._clock = clock

    def token(self, fan: str, conversation: str, started: float, intent: str, confidence: Optional[float]) -> Optional[str]:
        """The rating token for a model answer sent to `fan` in `conversation`, which began at
        `started` (None for an intent name the token cannot carry)."""
        if not re.fullmatch(r"[A-Za-z0-9_]{1,48}", intent):
            return None
        conf, issued = _confidence_field(confidence), _base36(int(self._clock() * 1000))
        return f"{intent}:{conf}:{issued}.{self._pseudonyms.tag('rating', fan, conversation, _began(started), intent, conf, issued)}"

    def check(self, fan: str, conversation: str, started: float, token: str) -> Optional[RatedAnswer]:
        """The answer a token names, when it was issued to this fan in this conversation since
        it began at `started` (not in an earlier one: erased, or expired)."""
        match = _TOKEN.match(token or "")
        if match is None:
            return None
        intent, conf, issued = match["intent"], match["confidence"], match["issued"]
        expected = self._pseudonyms.tag("rating", fan, conversation, _began(started), intent, conf, issued)
        if not hmac.compare_digest(expected, match["tag"]):
            return None
        return RatedAnswer(match["answer"], intent, None if conf == "-" else int(conf) / 1000)

    async def rate(
        self, fan: str, conversation: str, started: float, platform: str, token: Optional[str], rating: str,
        refusal: Callable[[], Awaitable[Optional[str]]], unratable: bool = False,
    ) -> list[Outgoing]:
        """Checks and stores one rating; the fan's acknowledgement. `started`: when the
        conversation as it is now began. `refusal` says why nothing may be stored for this
        fan now ("off", "consent") or None. Without a token: `unratable` when the last reply
        was a fallback or a fixed reply (not "no answer yet", which may be false then)."""
        if token is None:
            text = UNRATABLE_TEXT if unratable else NOTHING_TEXT
            return [Outgoing(Kind.FEEDBACK, text + (OFFER_HUMAN if rating == "bad" else ""))]
        if rating not in RATINGS:
            return [Outgoing(Kind.ERROR, f"A rating is good or bad, not {rating[:20]!r}: nothing was stored.")]
        rated = self.check(fan, conversation, started, token)
        if rated is None:
            return [Outgoing(Kind.ERROR, INVALID_TEXT)]
        thanks = GOOD_TEXT if rating == "good" else BAD_TEXT
        why_not = await refusal()
        if why_not is not None:
            return [Outgoing(Kind.FEEDBACK, f"Thanks for the feedback. {NOT_KEPT_TEXT[why_not]}" + (OFFER_HUMAN if rating == "bad" else ""))]
        values = {"at": self._clock(), "conversation": conversation, "platform": platform, "intent": rated.intent,
                  "confidence": rated.confidence, "rating": rating}

        def work() -> None:
            with self._store.engine.begin() as connection:
                statement = dialect_insert(connection)(ratings).values(fan=fan, answer=rated.answer, **values)
                connection.execute(statement.on_conflict_do_update(index_elements=[ratings.c.fan, ratings.c.answer], set_=values))

        await self._store.run(work)
        return [Outgoing(Kind.FEEDBACK, thanks)]


def _began(started: float) -> str:
    """A conversation's start as the tag signs it: whole milliseconds, the same after a round
    trip through either database's float column."""
    return str(round(started * 1000))


def _base36(number: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        number, rest = divmod(number, 36)
        out = digits[rest] + out
        if not number:
            return out
