"""Scripted conversations: JSON lines in, one JSON line per message the bot sends out.

The output names kinds, intents and confidences, so a script can pin the assistant's
behaviour without pinning its wording. The same input and model give the same output: every
timestamp the bot keeps (turns, conversations, tickets, events, ratings, consent) comes from
one `ReplayClock`, which moves one second per script line and reads the same within a line
however often it is read.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Optional, TextIO, Union

from bot.core import Bot
from bot.handoff.actions import DeskLineError, console_action
from bot.messages import Incoming, Kind, Outgoing, valid_unicode
from bot.privacy.events import epoch

REPLAY_PLATFORM = "replay"
#: A ticket number as a script gives it: ASCII digits only ("²" is a digit to `str.isdigit`).
TICKET = re.compile(r"#?[0-9]{1,18}")


class ReplayClock:
    """The bot's clock in a replay: `start`, plus one second per `tick` (per script line).
    Reading it does not move it, so a part of the bot that reads the time once more (an event,
    a rating) moves no other timestamp, and every part can use it."""

    def __init__(self, start: datetime) -> None:
        self._now = start

    def __call__(self) -> datetime:
        return self._now

    def epoch(self) -> float:
        return epoch(self._now)

    def tick(self, seconds: float = 1.0) -> None:
        self._now += timedelta(seconds=seconds)


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
    if valid_unicode(str(value)) != str(value):
        raise ReplayLineError(f'"{key}" holds a lone surrogate, which is not valid Unicode')
    return str(value)


def decode_line(raw: Union[str, bytes]) -> str:
    """A script line as text; bytes must be UTF-8 (each line is checked on its own, so one
    bad line is reported and skipped instead of ending the run)."""
    if isinstance(raw, str):
        return raw
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ReplayLineError(f"not valid UTF-8 (byte 0x{raw[error.start]:02x} at column {error.start + 1})") from None


def parse_line(raw: Union[str, bytes]) -> Union[FanLine, ModeratorLine]:
    try:
        item = json.loads(decode_line(raw))
    except json.JSONDecodeError as error:
        raise ReplayLineError(f"invalid JSON ({error.msg} at column {error.colno})") from None
    except RecursionError:
        raise ReplayLineError("JSON nested too deeply") from None
    if not isinstance(item, dict):
        raise ReplayLineError("expected a JSON object")
    if not isinstance(item.get("text"), str):
        raise ReplayLineError('"text" must be a string')
    if "user" in item and "moderator" not in item:
        return FanLine(_identifier(item, "user"), item["text"])
    if "moderator" in item and "user" not in item:
        ticket = _identifier(item, "ticket") if "ticket" in item else "last"
        if ticket != "last" and not TICKET.fullmatch(ticket):
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


async def replay(
    bot: Bot, lines: Iterable[Union[str, bytes]], out: TextIO, err: TextIO, max_chars: Optional[int] = None,
    clock: Optional[ReplayClock] = None,
) -> int:
    """Plays every line (text, or bytes read in binary so that invalid UTF-8 is one bad line,
    not the end of the run); returns the number of malformed lines (each reported on `err`).
    `clock`, the bot's, moves one second per line."""
    malformed = 0
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        if clock is not None:
            clock.tick()
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
    return int(digits) if TICKET.fullmatch(digits) else -1
