"""Scripted conversations: JSON lines in, one JSON line per message the bot sends out.

The output names kinds, intents and confidences, so a script can pin the assistant's
behaviour without pinning its wording. The same input and model give the same output.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Iterable, Optional, TextIO, Union

from bot.core import Bot
from bot.handoff.actions import DeskLineError, console_action
from bot.messages import Incoming, Kind, Outgoing

REPLAY_PLATFORM = "replay"


class ReplayLineError(ValueError):
    """A line that is not a fan message or a moderator action."""


@dataclass(frozen=True)
class FanLine:
    user: str
    text: str


@dataclass(frozen=True)
class ModeratorLine:
    moderator: str
    ticket: str
    text: str


def _identifier(item: dict[str, Any], key: str) -> str:
    value = item[key]
    if isinstance(value, bool) or not isinstance(value, (str, int)) or str(value) == "":
        raise ReplayLineError(f'"{key}" must be a non-empty string or integer')
    return str(value)


def parse_line(raw: str) -> Union[FanLine, ModeratorLine]:
    try:
        item = json.loads(raw)
    except json.JSONDecodeError as error:
        raise ReplayLineError(f"invalid JSON ({error.msg} at column {error.colno})") from None
    if not isinstance(item, dict):
        raise ReplayLineError("expected a JSON object")
    if not isinstance(item.get("text"), str):
        raise ReplayLineError('"text" must be a string')
    if "user" in item and "moderator" not in item:
        return FanLine(_identifier(item, "user"), item["text"])
    if "moderator" in item and "user" not in item:
        ticket = _identifier(item, "ticket") if "ticket" in item else "last"
        if ticket != "last" and not ticket.lstrip("#").isdigit():
            raise ReplayLineError('"ticket" must be a ticket number or "last"')
        return ModeratorLine(_identifier(item, "moderator"), ticket, item["text"])
    raise ReplayLineError('expected {"user": ID, "text": T} or {"moderator": ID, "ticket": ID, "text": T}')


def output_line(reply: Outgoing, actor: str) -> str:
    """`user` is the fan a message goes to, or for desk messages whoever's line caused it."""
    record = {
        "to": reply.to,
        "user": reply.recipient.user_id if reply.recipient and reply.to == "user" else actor,
        "text": reply.text,
        "kind": reply.kind.value,
        "intent": reply.intent,
        "confidence": reply.confidence,
        "ticket": reply.ticket,
    }
    return json.dumps(record, ensure_ascii=False)


async def replay(bot: Bot, lines: Iterable[str], out: TextIO, err: TextIO, max_chars: Optional[int] = None) -> int:
    """Plays every line; returns the number of malformed lines (each reported on `err`)."""
    malformed = 0
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        for notice in await bot.expire_handoffs():
            print(output_line(notice, ""), file=out, flush=True)
        try:
            line = parse_line(raw)
        except ReplayLineError as error:
            malformed += 1
            print(f"bot replay: line {number}: {error}; skipped", file=err, flush=True)
            continue
        if isinstance(line, FanLine):
            actor = line.user
            replies = await bot.handle(Incoming(REPLAY_PLATFORM, line.user, "direct", line.text), max_chars)
        else:
            actor = line.moderator
            try:  # a replay's moderator lines are the console desk's: its list, its parsing
                action = console_action(line.moderator, line.text, _ticket_number(line.ticket), bot.handoff.settings.moderators)
                replies = await bot.moderate(action)
            except DeskLineError as error:  # refused at the desk, as the console desk does
                replies = [Outgoing(Kind.REFUSED, str(error), to="desk")]
        for reply in replies:
            print(output_line(reply, actor), file=out, flush=True)
    await bot.drain()
    return malformed


def _ticket_number(ticket: str) -> Optional[int]:
    """ "last" (or "#3"/"3") to what the desk understands; unknown ids simply match nothing."""
    if ticket == "last":
        return None
    digits = ticket.lstrip("#")
    return int(digits) if digits.isdigit() else -1
