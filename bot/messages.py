"""The one message shape that crosses the connector boundary, in each direction.

Connectors turn platform payloads into `Incoming` and render `Outgoing`; the core sees no
platform types. Raw platform ids live only in `Incoming` and never leave the connector's
side of `Bot.handle` (the core derives pseudonyms from them at once).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum
from typing import Literal, Optional


class Kind(str, Enum):
    """What a reply is; tests and `bot replay` assert on kinds, never on wording."""

    DISCLOSURE = "disclosure"
    ANSWER = "answer"
    FALLBACK = "fallback"
    HANDOFF_OFFER = "handoff_offer"
    ASK_BACK = "ask_back"  # a yes/no question before acting on words it is unsure of
    HANDOFF_STARTED = "handoff_started"
    HANDOFF_TICKET = "handoff_ticket"
    HANDOFF_RELAY = "handoff_relay"
    MODERATOR_JOINED = "moderator_joined"
    MODERATOR_REPLY = "moderator_reply"
    HANDOFF_RESOLVED = "handoff_resolved"
    HANDOFF_TIMEOUT = "handoff_timeout"
    PRIVACY_NOTICE = "privacy_notice"
    ERASURE_CONFIRM_REQUEST = "erasure_confirm_request"
    ERASURE_DONE = "erasure_done"
    DATA_EXPORT = "data_export"
    EXPLANATION = "explanation"
    CONSENT_REQUEST = "consent_request"  # opt-in: may anything about the fan be stored?
    FEEDBACK = "feedback"  # the acknowledgement of a rating (`/feedback`, Helpful buttons)
    REFUSED = "refused"
    ERROR = "error"


#: Kinds whose content concerns only the fan: connectors deliver them privately
#: (ephemeral message or DM), never into a shared channel.
PRIVATE_KINDS = frozenset(
    {
        Kind.PRIVACY_NOTICE,
        Kind.ERASURE_CONFIRM_REQUEST,
        Kind.ERASURE_DONE,
        Kind.DATA_EXPORT,
        Kind.EXPLANATION,
        Kind.FEEDBACK,
    }
)


_SURROGATE = re.compile("[\ud800-\udfff]")


def valid_unicode(text: str) -> str:
    """`text` with lone surrogates (which JSON allows as `\\ud800` and no UTF-8 encoder
    accepts) replaced by U+FFFD; already valid text is returned as it is."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return _SURROGATE.sub("\ufffd", text)
    return text


@dataclass(frozen=True)
class Address:
    """Where a fan can be reached. Raw ids: connector side only, stored only encrypted."""

    platform: str
    user_id: str
    conversation_id: str


@dataclass(frozen=True)
class Incoming:
    """A fan's message as the connector received it.

    `conversation_id` separates a DM from a channel thread of the same fan: each new
    conversation gets its own AI disclosure.
    """

    platform: str
    user_id: str
    conversation_id: str
    text: str
    attachments: int = 0
    #: A click on the Yes / No of a question (`text` is then "yes" or "no"): which question,
    #: when the button names it ("consent"); None for typed words and the generic Yes / No.
    answers: Optional[str] = None

    def __post_init__(self) -> None:
        # Decoded once at the edge: whatever a connector hands over is valid Unicode from here on.
        object.__setattr__(self, "text", valid_unicode(self.text))

    @property
    def address(self) -> Address:
        return Address(self.platform, self.user_id, self.conversation_id)


@dataclass(frozen=True)
class Outgoing:
    """A message the assistant (or, relayed, a moderator) sends."""

    kind: Kind
    text: str
    to: Literal["user", "desk"] = "user"
    intent: Optional[str] = None
    confidence: Optional[float] = None
    ticket: Optional[str] = None
    from_ai: bool = True
    #: For a message to a fan other than the sender being answered (a moderator's reply,
    #: a timeout notice): where to deliver it.
    recipient: Optional[Address] = None
    #: A model answer the fan may rate (`bot.feedback`): the signed token the Helpful / Not
    #: helpful buttons carry. Set on the last answer of a reply only.
    rate: Optional[str] = None

    @property
    def private(self) -> bool:
        return self.kind in PRIVATE_KINDS
