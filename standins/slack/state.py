"""Platform state: users, channels, user groups, message history, and waiting for what the bot sent."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any, Optional

from .model import SentMessage, _SlackError
from .text import shown

log = logging.getLogger("standins.slack")


class _StateMixin:
    """Platform state: users, channels, user groups, message history, and waiting for what the bot sent."""

    # ------------------------------------------------------------------ configuration

    def add_user(self, user_id: str, name: str, is_bot: bool = False) -> None:
        self._users[user_id] = {
            "id": user_id,
            "team_id": self.team_id,
            "name": name,
            "real_name": name,
            "deleted": False,
            "is_bot": is_bot,
            "is_app_user": False,
            "profile": {"real_name": name, "display_name": name, "team": self.team_id},
        }

    def add_channel(self, channel_id: str, members: Optional[list[str]] = None, name: Optional[str] = None) -> None:
        self._channels[channel_id] = {"members": list(members or []), "name": name or channel_id.lower()}

    def add_usergroup(self, group_id: str, members: Optional[list[str]] = None) -> None:
        self._usergroups[group_id] = list(members or [])

    def refuse_dm(self, user_id: str, error: str = "user_not_visible") -> None:
        """The bot may no longer open a DM with the user: `conversations.open` answers `error`.
        Its reference lists `user_disabled` (a deactivated account), `user_not_found`, and
        `user_not_visible` ("the calling user is restricted from seeing the requested user",
        e.g. a guest or an external Slack Connect member who can still be in a shared channel)."""
        self._refused_dms[user_id] = error

    def rate_limit(self, method: str = "chat.postMessage", times: int = 1, retry_after: int = 1) -> None:
        """The next `times` calls to `method` get HTTP 429 with `Retry-After: retry_after`."""
        self._rate_limits[method] = [times, retry_after]

    def fail(self, method: str, ts: str, error: str) -> None:
        """Makes `method` ("chat.delete", "chat.update") answer `error` for the message `ts`,
        as Slack does when, e.g., a workspace's retention or compliance settings forbid it."""
        self._failures[(method, ts)] = error

    def messages_in(self, channel: str) -> list[dict[str, Any]]:
        """What a person would see in the channel now (deleted messages are gone)."""
        return list(self._history.get(channel, []))

    def dm_channel(self, user_id: str) -> str:
        """The bot's DM channel with a user: deterministic, "D" + the id without its U/W."""
        return "D" + (user_id[1:] if user_id[:1] in ("U", "W") else user_id)

    # ------------------------------------------------------------------ recordings

    def clear(self) -> None:
        self.sent.clear()
        self.calls.clear()
        self.rate_limited.clear()
        self.deliveries.clear()
        self.envelopes.clear()
        self.acks.clear()

    async def wait_for_sent(
        self,
        predicate: Callable[[SentMessage], bool] = lambda m: True,
        count: int = 1,
        timeout: float = 10.0,
    ) -> list[SentMessage]:
        """Every sent message matching `predicate`, once there are at least `count` of them."""

        def matching() -> list[SentMessage]:
            return [m for m in self.sent if predicate(m)]

        try:
            await self._wait(lambda: len(matching()) >= count, timeout)
        except TimeoutError:
            summary = "\n".join(f"  {m.method} {m.channel} thread={m.thread_ts} text={(m.text or '')[:80]!r}" for m in self.sent)
            raise AssertionError(
                f"waited {timeout:g}s for {count} sent message(s) matching the predicate, "
                f"found {len(matching())}; sent so far ({len(self.sent)}):\n{summary or '  (nothing)'}"
            ) from None
        return matching()

    async def _wait(self, ready: Callable[[], bool], timeout: float) -> None:
        """Until `ready()` holds, rechecked on every change; asyncio.TimeoutError after `timeout`."""
        deadline = time.monotonic() + timeout
        while not ready():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except TimeoutError:
                pass

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def _record_sent(self, message: SentMessage) -> None:
        if message.text is not None:
            message.seen = shown(message.text, self._display_name, self._channel_name)
        self.sent.append(message)
        log.debug("bot sent %s to %s", message.method, message.channel)
        self._notify()

    def _channel_arg(self, args: dict[str, Any]) -> str:
        """Slack takes a user id as channel for the bot's DM with that user."""
        channel = str(args.get("channel") or "")
        if not channel:
            raise _SlackError("channel_not_found")
        return self.dm_channel(channel) if channel[:1] in ("U", "W") else channel

    def _bot_message(self, text: Optional[str], blocks: Optional[list[Any]], thread_ts: Optional[str]) -> dict[str, Any]:
        message: dict[str, Any] = {
            "type": "message",
            "user": self.bot_user_id,
            "bot_id": self.bot_id,
            "app_id": self.app_id,
            "team": self.team_id,
            "text": text or "",
            "ts": self._next_ts(),
            "bot_profile": {"id": self.bot_id, "app_id": self.app_id, "name": self.bot_name, "team_id": self.team_id},
        }
        if blocks is not None:
            message["blocks"] = blocks
        if thread_ts:
            message["thread_ts"] = str(thread_ts)
        return message

    def _store(self, channel: str, message: dict[str, Any]) -> None:
        thread_ts = message.get("thread_ts")
        if thread_ts and thread_ts != message["ts"]:
            parent = self._find(channel, thread_ts)
            if parent is not None:
                message.setdefault("parent_user_id", parent.get("user"))
                parent["thread_ts"] = thread_ts
                parent["reply_count"] = parent.get("reply_count", 0) + 1
        self._history.setdefault(channel, []).append(message)

    def _find(self, channel: str, ts: str) -> Optional[dict[str, Any]]:
        return next((m for m in self._history.get(channel, []) if m["ts"] == ts), None)

    def _next_ts(self) -> str:
        """Unique, increasing, Slack-shaped: "1700000000.000100", "1700000000.000200", ..."""
        self._ts_count += 1
        micros = 1_700_000_000_000_000 + self._ts_count * 100
        return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"

    def _display_name(self, user_id: str) -> str:
        user = self._users.get(user_id)
        return str(user["profile"]["display_name"]) if user else user_id

    def now(self) -> float:
        """The stand-in's clock (wall time plus `advance`): response URLs expire by it."""
        return time.time() + self._clock_offset

    def advance(self, seconds: float) -> None:
        """Moves the stand-in's clock on, so a test can outlive a 30-minute response_url."""
        self._clock_offset += seconds

    def _require_postable(self, channel: str) -> None:
        """chat.postMessage's errors (docs.slack.dev/reference/methods/chat.postMessage):
        `channel_not_found` for a channel the app cannot see, `not_in_channel` for one it was
        not invited to. DMs (D...) are always open to the app. Channels people wrote in are
        known; a channel made with add_channel(members=...) without the bot refuses it."""
        if channel.startswith("D"):
            return
        known = self._channels.get(channel)
        if known is None:
            if channel in self._history:
                return
            raise _SlackError("channel_not_found")
        if known["members"] and self.bot_user_id not in known["members"]:
            raise _SlackError("not_in_channel")
