"""The ticket state machine: every legal move is listed; anything else is refused.

open -> claimed (a moderator takes it) -> resolved (back to the AI)
claimed -> open (unclaim, or the operator's release: back in the queue)
claimed -> claimed (transfer; takeover by another moderator)
open | claimed -> cancelled (the fan returns to the bot) ; open | claimed -> erased (/forget-me)
"""

from __future__ import annotations

from enum import Enum


class Status(str, Enum):
    OPEN = "open"
    CLAIMED = "claimed"
    RESOLVED = "resolved"
    CANCELLED = "cancelled"
    ERASED = "erased"


class Action(str, Enum):
    CLAIM = "claim"
    UNCLAIM = "unclaim"
    TRANSFER = "transfer"
    RESOLVE = "resolve"
    CANCEL = "cancel"
    ERASE = "erase"
    TAKEOVER = "takeover"
    RELEASE = "release"


ACTIVE = frozenset({Status.OPEN, Status.CLAIMED})

_MOVES: dict[tuple[Status, Action], Status] = {
    (Status.OPEN, Action.CLAIM): Status.CLAIMED,
    (Status.CLAIMED, Action.UNCLAIM): Status.OPEN,
    (Status.CLAIMED, Action.TRANSFER): Status.CLAIMED,
    (Status.CLAIMED, Action.TAKEOVER): Status.CLAIMED,
    (Status.CLAIMED, Action.RELEASE): Status.OPEN,
    (Status.CLAIMED, Action.RESOLVE): Status.RESOLVED,
    (Status.OPEN, Action.CANCEL): Status.CANCELLED,
    (Status.CLAIMED, Action.CANCEL): Status.CANCELLED,
    (Status.OPEN, Action.ERASE): Status.ERASED,
    (Status.CLAIMED, Action.ERASE): Status.ERASED,
}


class IllegalTransition(ValueError):
    """The move does not exist from this state; the message says why in plain words."""


def next_status(current: Status, action: Action) -> Status:
    try:
        return _MOVES[(current, action)]
    except KeyError:
        raise IllegalTransition(f"a {current.value} ticket cannot be {_past(action)}") from None


def _past(action: Action) -> str:
    return {"claim": "claimed", "unclaim": "unclaimed", "transfer": "transferred", "resolve": "resolved",
            "cancel": "cancelled", "erase": "erased",
            "takeover": "taken over", "release": "released"}[action.value]
