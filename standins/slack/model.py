"""Slack's limits, the stand-in's records (what the bot sent, what each delivery did) and small helpers."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any, Optional

from aiohttp import web

#: The deprecated verification token Slack still puts in payloads; Bolt ignores it.
VERIFICATION_TOKEN = "standin-verification-token"
#: Slack's own User-Agent on Events API requests.
SLACKBOT_UA = "Slackbot 1.0 (+https://api.slack.com/robots)"
#: Slack rejects longer message text with `msg_too_long`, more blocks with `invalid_blocks`.
MAX_TEXT_CHARS = 40_000
MAX_BLOCKS = 50
MAX_SECTION_TEXT_CHARS = 3_000
#: A response_url takes at most five messages (Slack: "up to 5 times within 30 minutes").
RESPONSE_URL_USES = 5
RESPONSE_URL_SECONDS = 30 * 60
BOT_SCOPES = "app_mentions:read,channels:history,chat:write,commands,groups:history,im:history,im:write,usergroups:read,users:read"


@dataclass
class SentMessage:
    """One message the bot made visible to someone."""

    method: str  # "chat.postMessage" | "chat.postEphemeral" | "chat.update" | "response_url" | "ack"
    channel: Optional[str]
    text: Optional[str]
    blocks: Optional[list[Any]] = None
    thread_ts: Optional[str] = None
    user: Optional[str] = None  # who sees it: ephemeral target, or the user of a command/click
    ts: Optional[str] = None
    response_type: Optional[str] = None  # response_url / ack: "ephemeral" | "in_channel"
    replace_original: Optional[bool] = None
    delete_original: Optional[bool] = None
    raw: dict[str, Any] = field(default_factory=dict)
    #: What a person sees: `text` with Slack's markup rendered and entities decoded (see text.py).
    seen: Optional[str] = None
    #: Files shared with the message (files.completeUploadExternal): id, title, name, content.
    files: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Delivery:
    """What happened to one delivery of fan/moderator activity to the bot."""

    kind: str  # "events_api" | "slash_commands" | "interactive"
    mode: str  # "socket" | "http"
    payload: dict[str, Any]  # the event_callback body, the command fields or the interactive payload
    status: int  # HTTP status; 200 when acked over the socket; 0 when not answered within ack_timeout
    body: str = ""  # the HTTP response body, or the socket ack's payload as JSON
    ack_payload: Optional[dict[str, Any]] = None
    event_id: Optional[str] = None
    envelope_id: Optional[str] = None
    latency_ms: Optional[float] = None
    retry: int = 0  # retry number of the last attempt (0: first delivery)
    attempts: int = 1

    @property
    def acked(self) -> bool:
        return 200 <= self.status < 300


class _SlackError(Exception):
    """An `{"ok": false, "error": ...}` answer."""


@dataclass
class _ResponseTarget:
    channel: str
    user: str
    created: float
    uses_left: int = RESPONSE_URL_USES


@dataclass
class _Socket:
    ws: web.WebSocketResponse
    transport: Optional[asyncio.Transport]

# ---------------------------------------------------------------------- helpers


async def _request_args(request: web.Request) -> dict[str, Any]:
    """Query string plus a JSON or form body, as Slack merges them; JSON-valued form fields decoded."""
    args: dict[str, Any] = dict(request.query)
    if request.method == "POST" and request.can_read_body:
        if request.content_type == "application/json":
            body = await request.json()
            args.update(body if isinstance(body, dict) else {})
        else:
            args.update({k: v for k, v in (await request.post()).items() if isinstance(v, str)})
    for key in ("blocks", "attachments", "metadata", "files"):
        if isinstance(args.get(key), str):
            try:
                args[key] = json.loads(args[key])
            except json.JSONDecodeError:
                pass
    return args


def _bearer(request: web.Request) -> Optional[str]:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def _message_content(args: dict[str, Any]) -> tuple[Optional[str], Optional[list[Any]]]:
    text, blocks = args.get("text"), args.get("blocks")
    if not text and not blocks and not args.get("attachments"):
        raise _SlackError("no_text")
    if text is not None and len(str(text)) > MAX_TEXT_CHARS:
        raise _SlackError("msg_too_long")
    if blocks is not None:
        if not isinstance(blocks, list) or len(blocks) > MAX_BLOCKS:
            raise _SlackError("invalid_blocks")
        for block in blocks:
            section_text = block.get("text") if isinstance(block, dict) else None
            if not isinstance(block, dict) or "type" not in block:
                raise _SlackError("invalid_blocks")
            if isinstance(section_text, dict) and len(str(section_text.get("text", ""))) > MAX_SECTION_TEXT_CHARS:
                raise _SlackError("invalid_blocks")
            if block["type"] == "actions" and not _valid_actions(block):
                raise _SlackError("invalid_blocks")
    return (str(text) if text is not None else None), blocks


#: Block Kit limits Slack enforces on an actions block and its buttons (installed slack_sdk,
#: models/blocks/block_elements.py: `action_id_max_length = 255`, ButtonElement
#: `text_max_length = 75`, `value_max_length = 2000`; blocks.py ActionsBlock: 25 elements).
MAX_ACTION_ELEMENTS, MAX_ACTION_ID_CHARS, MAX_BUTTON_TEXT_CHARS, MAX_BUTTON_VALUE_CHARS = 25, 255, 75, 2000


def _valid_actions(block: dict[str, Any]) -> bool:
    elements = block.get("elements")
    if not isinstance(elements, list) or not 1 <= len(elements) <= MAX_ACTION_ELEMENTS:
        return False
    for element in elements:
        if not isinstance(element, dict) or element.get("type") != "button":
            continue
        label = element.get("text") or {}
        if not 1 <= len(str(element.get("action_id") or "")) <= MAX_ACTION_ID_CHARS:
            return False
        if len(str(element.get("value", ""))) > MAX_BUTTON_VALUE_CHARS or not 1 <= len(str(label.get("text", ""))) <= MAX_BUTTON_TEXT_CHARS:
            return False
    return True


def buttons_of(message: dict[str, Any]) -> set[tuple[str, str]]:
    """(action_id, value) of every button on a stored message."""
    return {
        (str(e.get("action_id")), str(e.get("value", "")))
        for block in message.get("blocks") or [] if isinstance(block, dict) and block.get("type") == "actions"
        for e in block.get("elements") or [] if isinstance(e, dict) and e.get("type") == "button"
    }


def _slack_json(body: dict[str, Any], status: int = 200, headers: Optional[dict[str, str]] = None) -> web.Response:
    return web.json_response(body, status=status, headers=headers)


def _channel_type(channel_id: str) -> str:
    return {"D": "im", "G": "group"}.get(channel_id[:1], "channel")


def _ts_key(ts: str) -> tuple[int, int]:
    seconds, _, micros = ts.partition(".")
    return int(seconds), int(micros or 0)


def _delivery_summary(delivery: Delivery) -> dict[str, Any]:
    return {
        "status": delivery.status,
        "event_id": delivery.event_id,
        "envelope_id": delivery.envelope_id,
        "latency_ms": delivery.latency_ms,
        "attempts": delivery.attempts,
    }
