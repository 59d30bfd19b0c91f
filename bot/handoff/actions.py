"""What a moderator does at a desk, as typed values parsed once where the platform event
arrives (a Slack or Discord thread line or button, a console desk line), never rewritten
into command strings and parsed again by the core.

Authorisation is each desk's own rule, decided at the edge and carried as `authorised`:
the console desk's list is `[handoff] moderators`, the Slack desk's the moderator user group
(or the desk channel's members), the Discord desk's the moderator role. No desk's rule is
OR-ed with another's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Optional, Union

DEFAULT_NAME = "A moderator"
NAME_CHARS = 64


@dataclass(frozen=True)
class Claim:
    """`name` "" means none was given: a platform desk fills in the moderator's display name."""

    name: str = ""


@dataclass(frozen=True)
class Unclaim:
    pass


@dataclass(frozen=True)
class Transfer:
    """`target` is the platform id of the moderator taking over; `target_authorised` is the
    desk's own check that they may work tickets (the same rule as for the one acting)."""

    target: str
    name: str = DEFAULT_NAME
    target_authorised: bool = False


@dataclass(frozen=True)
class Resolve:
    pass


@dataclass(frozen=True)
class Reply:
    text: str


@dataclass(frozen=True)
class Takeover:
    """Takes a ticket another moderator claimed (and went silent on); audited, and the
    previous moderator is told at the desk."""

    name: str = ""


DeskAction = Union[Claim, Unclaim, Transfer, Resolve, Reply, Takeover]


@dataclass(frozen=True)
class ModeratorAction:
    """One thing a moderator did at a desk. `ticket` None means the newest active ticket
    (console desk only); `authorised` is the desk's own verdict on `moderator_id`."""

    moderator_id: str
    action: DeskAction
    ticket: Optional[int] = None
    authorised: bool = False


class DeskLineError(ValueError):
    """A desk line that names no known action; the message is the moderator-facing usage."""


def usage(prefix: str) -> str:
    return (
        f"Unknown desk command: use {prefix}claim [name], {prefix}unclaim, {prefix}transfer MODERATOR [name], "
        f"{prefix}resolve, {prefix}takeover [name] or plain text to reply."
    )


def parse_line(text: str, prefix: str) -> Union[DeskAction, TransferRequest]:
    """A desk line: `{prefix}claim [name]`, `{prefix}unclaim`, `{prefix}resolve`,
    `{prefix}takeover [name]`, `{prefix}transfer TARGET [name]` (a `TransferRequest`, whose
    raw target the desk resolves and authorises), or plain text (a `Reply`).

    Raises `DeskLineError` for an unknown command or a transfer without a target."""
    line = text.strip()
    if not line.startswith(prefix):
        return Reply(line)
    command, _, rest = line[len(prefix):].partition(" ")
    command, rest = command.lower(), rest.strip()
    if command == "claim":
        return Claim(_name(rest))
    if command == "takeover":
        return Takeover(_name(rest))
    if command == "unclaim" and not rest:
        return Unclaim()
    if command == "resolve" and not rest:
        return Resolve()
    if command == "transfer":
        target, _, name = rest.partition(" ")
        if not target:
            raise DeskLineError(f"Transfer to a moderator: {prefix}transfer MODERATOR [display name].")
        return TransferRequest(target, name.strip()[:NAME_CHARS])
    raise DeskLineError(usage(prefix))


@dataclass(frozen=True)
class TransferRequest:
    """A transfer as written: the desk turns `target` (a mention, an id) into a `Transfer`."""

    target: str
    name: str = ""


def _name(text: str) -> str:
    return text.strip()[:NAME_CHARS]


def console_action(moderator_id: str, text: str, ticket: Optional[int], moderators: Sequence[str]) -> ModeratorAction:
    """A console (or replay) desk line; its rule: the id is in `[handoff] moderators`.

    Raises `DeskLineError` for a line that names no action."""
    parsed = parse_line(text, "/")
    if isinstance(parsed, TransferRequest):
        parsed = Transfer(parsed.target, parsed.name or DEFAULT_NAME, parsed.target in moderators)
    return ModeratorAction(moderator_id, parsed, ticket, moderator_id in moderators)
