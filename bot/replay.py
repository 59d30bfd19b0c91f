"""Scripted conversations: JSON lines in, one JSON line per message the bot sends out.

The output names kinds, intents and confidences, so a script can pin the assistant's
behaviour without pinning its wording. The same input and model give the same output.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Iterable, Optional, TextIO, Union

from bot.core import Bot
from bot.messages import Incoming, Kind, Outgoing

REPLAY_PLATFORM = "replay"
NO_DESK_TEXT = "No moderator desk is connected in this version, so moderator actions are not available."


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
        return ModeratorLine(_identifier(item, "moderator"), ticket, item["text"])
    raise ReplayLineError('expected {"user": ID, "text": T} or {"moderator": ID, "ticket": ID, "text": T}')


def output_line(reply: Outgoing, user: str) -> str:
    record = {
        "to": reply.to,
        "user": user,
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
        try:
            line = parse_line(raw)
        except ReplayLineError as error:
            malformed += 1
            print(f"bot replay: line {number}: {error}; skipped", file=err, flush=True)
            continue
        if isinstance(line, FanLine):
            replies = await bot.handle(Incoming(REPLAY_PLATFORM, line.user, "direct", line.text), max_chars)
            for reply in replies:
                print(output_line(reply, line.user), file=out, flush=True)
        else:
            refusal = Outgoing(Kind.REFUSED, NO_DESK_TEXT, to="desk", ticket=line.ticket)
            print(output_line(refusal, line.moderator), file=out, flush=True)
    return malformed
