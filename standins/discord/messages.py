"""REST: channel messages (create, edit, delete), permissions and threads."""

from __future__ import annotations

import logging
import time
from typing import Any, Optional

from aiohttp import web

from .model import (
    _MANAGE_CHANNELS,
    _MANAGE_MESSAGES,
    _MANAGE_THREADS,
    CREATE_PUBLIC_THREADS,
    DM,
    GUILD_NEWS,
    GUILD_TEXT,
    NEWS_THREAD,
    PRIVATE_THREAD,
    PUBLIC_THREAD,
    SEND_MESSAGES,
    SEND_MESSAGES_IN_THREADS,
    THREAD_TYPES,
    ApiError,
    Json,
    _form_error,
    _iso,
)

log = logging.getLogger("standins.discord")
#: How long an enforced nonce returns its message ("the past few minutes": Discord gives no figure).
NONCE_SECONDS = 300.0


class _MessagesMixin:
    """REST: channel messages (create, edit, delete), permissions and threads."""

    # ---------------------------------------------------------------- REST: messages

    async def _post_message(self, request: web.Request, body: Any, files: list[Json], channel_id: str) -> Json:
        channel = self._channel_or_404(channel_id)
        body = body or {}
        if channel["type"] == DM and int(channel["recipients"][0]["id"]) in self._closed_dms:
            raise ApiError(403, 50007, "Cannot send messages to this user")
        if channel["type"] != DM:  # Discord docs, Create Message: needs SEND_MESSAGES (in threads, _IN_THREADS)
            self._require_permission(int(channel_id), SEND_MESSAGES_IN_THREADS if channel["type"] in THREAD_TYPES else SEND_MESSAGES)
        nonce = body.get("nonce")
        if nonce is not None and len(str(nonce)) > 25:
            raise _form_error("nonce", "BASE_TYPE_BAD_LENGTH", "Must be 25 or fewer in length.")
        if nonce is not None and body.get("enforce_nonce"):
            # Discord, Create Message: "If true and nonce is present, it will be checked for
            # uniqueness in the past few minutes. If another message was created by the same
            # author with the same nonce, that message will be returned and no new message will
            # be created." (The stand-in keeps nonces for NONCE_SECONDS.)
            seen = self._nonces.get(str(nonce))
            if seen is not None and time.monotonic() - seen[1] < NONCE_SECONDS and seen[0] in self._messages:
                return self._messages[seen[0]]
        message = self._bot_message(int(channel_id), body, files)
        self._store(message)
        if nonce is not None and body.get("enforce_nonce"):
            self._nonces[str(nonce)] = (int(message["id"]), time.monotonic())
        self._record("message", int(channel_id), body, message, files)
        await self._dispatch_if_connected("MESSAGE_CREATE", self._gateway_message(message))
        return message

    async def _get_message(self, request: web.Request, body: Any, files: list[Json], channel_id: str, message_id: str) -> Json:
        return self._message_or_404(channel_id, message_id)

    async def _patch_message(self, request: web.Request, body: Any, files: list[Json], channel_id: str, message_id: str) -> Json:
        message = self._message_or_404(channel_id, message_id)
        self._raise_failure("PATCH message", int(message_id))
        if int(message["author"]["id"]) != self.bot_user_id:
            raise ApiError(403, 50005, "Cannot edit a message authored by another user")
        self._edit(message, body or {}, files)
        self._record("edit", int(channel_id), body or {}, message, files)
        await self._dispatch_if_connected("MESSAGE_UPDATE", self._gateway_message(message))
        return message

    async def _delete_message(self, request: web.Request, body: Any, files: list[Json], channel_id: str, message_id: str) -> None:
        """DELETE /channels/{channel.id}/messages/{message.id}: a bot deletes its own messages;
        another user's needs MANAGE_MESSAGES, else 403 with code 50013 Missing Permissions;
        an unknown message is 404 code 10008 Unknown Message (Discord's "Delete Message"
        and JSON error codes docs; discord.py raises NotFound / Forbidden for them)."""
        message = self._message_or_404(channel_id, message_id)
        self._raise_failure("DELETE message", int(message_id))
        if int(message["author"]["id"]) != self.bot_user_id:
            self._require_permission(int(channel_id), _MANAGE_MESSAGES)
        await self._delete(message)
        return None

    async def _delete_channel(self, request: web.Request, body: Any, files: list[Json], channel_id: str) -> Json:
        """DELETE /channels/{channel.id}: for a thread, needs MANAGE_THREADS (else 403, 50013);
        the thread and its messages go, THREAD_DELETE is dispatched; returns the channel."""
        channel = self._channel_or_404(channel_id)
        self._raise_failure("DELETE channel", int(channel_id))
        is_thread = channel["type"] in THREAD_TYPES
        self._require_permission(int(channel_id), _MANAGE_THREADS if is_thread else _MANAGE_CHANNELS)
        for message in [m for m in self._messages.values() if m["channel_id"] == str(channel_id)]:
            del self._messages[int(message["id"])]
        del self._channels[int(channel_id)]
        self.deleted_channels.append(int(channel_id))
        event = {"id": channel["id"], "guild_id": channel.get("guild_id"), "parent_id": channel.get("parent_id"), "type": channel["type"]}
        await self._dispatch_if_connected("THREAD_DELETE" if is_thread else "CHANNEL_DELETE", event if is_thread else channel)
        return channel

    def fail(self, method: str, target_id: int, status: int = 403, code: int = 50013, message: str = "Missing Permissions") -> None:
        """Makes "DELETE message", "PATCH message" or "DELETE channel" on `target_id` answer
        with that Discord error (e.g. a channel permission overwrite taking the bot's rights)."""
        self._failures[(method, int(target_id))] = ApiError(status, code, message)

    def _raise_failure(self, method: str, target_id: int) -> None:
        failure = self._failures.get((method, target_id))
        if failure is not None:
            raise failure

    def _require_permission(self, channel_id: int, permission: int) -> None:
        guild_id = self._channels.get(channel_id, {}).get("guild_id")
        parent = self._channels.get(channel_id, {}).get("parent_id")
        denied = (channel_id, permission) in self._denied or (parent is not None and (int(parent), permission) in self._denied)
        if guild_id is None or denied or not self._permissions(self._guilds[int(guild_id)], self.bot_user_id) & permission:
            raise ApiError(403, 50013, "Missing Permissions")

    async def _delete(self, message: Json) -> None:
        del self._messages[int(message["id"])]
        channel_id, message_id = int(message["channel_id"]), int(message["id"])
        self.deleted.append((channel_id, message_id))
        event: Json = {"id": str(message_id), "channel_id": str(channel_id)}
        guild_id = self._channels.get(channel_id, {}).get("guild_id")
        if guild_id:
            event["guild_id"] = guild_id
        await self._dispatch_if_connected("MESSAGE_DELETE", event)

    # ---------------------------------------------------------------- REST: threads

    async def _post_thread(self, request: web.Request, body: Any, files: list[Json], channel_id: str,
                           message_id: Optional[str] = None) -> tuple[int, Json]:
        parent = self._channel_or_404(channel_id)
        body = body or {}
        if parent["type"] not in (GUILD_TEXT, GUILD_NEWS):
            raise ApiError(400, 50024, "Cannot execute action on this channel type")
        name = str(body.get("name") or "")
        if not 1 <= len(name) <= 100:
            raise _form_error("name", "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 100 in length.")
        starter: Optional[Json] = None
        if message_id is not None:
            starter = self._message_or_404(channel_id, message_id)
            if "thread" in starter:
                raise ApiError(400, 160004, "A thread has already been created for this message")
            thread_id = int(message_id)  # a thread started from a message shares its id
            kind = NEWS_THREAD if parent["type"] == GUILD_NEWS else PUBLIC_THREAD
            self._require_permission(int(channel_id), CREATE_PUBLIC_THREADS)  # Discord docs, Start Thread from Message
        else:
            thread_id = self._snowflake()
            kind = int(body.get("type") or PRIVATE_THREAD)  # API v10 default: private
            if kind not in (PUBLIC_THREAD, PRIVATE_THREAD, NEWS_THREAD):
                raise _form_error("type", "BASE_TYPE_CHOICES", "Value must be one of {10, 11, 12}.")
        now = _iso()
        thread: Json = {
            "id": str(thread_id), "type": kind, "guild_id": parent["guild_id"], "parent_id": parent["id"],
            "owner_id": str(self.bot_user_id), "name": name, "last_message_id": None, "message_count": 0,
            "member_count": 1, "rate_limit_per_user": body.get("rate_limit_per_user") or 0, "flags": 0,
            "total_message_sent": 0, "thread_metadata": {
                "archived": False, "auto_archive_duration": int(body.get("auto_archive_duration") or 1440),
                "archive_timestamp": now, "locked": False, "create_timestamp": now,
            },
            "member": {"id": str(thread_id), "user_id": str(self.bot_user_id), "join_timestamp": now, "flags": 0},
        }
        if kind == PRIVATE_THREAD:
            thread["thread_metadata"]["invitable"] = bool(body.get("invitable", True))
        self._channels[thread_id] = thread
        self.threads.append(thread)
        if starter is not None:
            starter["thread"] = thread
        log.info("thread %s created in channel %s (type %d)", thread_id, channel_id, kind)
        await self._dispatch_if_connected("THREAD_CREATE", {**thread, "newly_created": True})
        if starter is None and kind == PUBLIC_THREAD:
            # Discord announces a public thread made without a starter message in its parent.
            notice = self._bot_message(int(channel_id), {"content": name}, [], kind=18)
            notice["message_reference"] = {"type": 0, "channel_id": str(thread_id), "guild_id": parent["guild_id"]}
            self._store(notice)
            await self._dispatch_if_connected("MESSAGE_CREATE", self._gateway_message(notice))
        return 201, thread
