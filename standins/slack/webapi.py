"""The Web API (`/api/{method}`) and the response_url of commands and clicks."""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from typing import Any

from aiohttp import web

from .model import (
    BOT_SCOPES,
    RESPONSE_URL_SECONDS,
    SentMessage,
    _bearer,
    _message_content,
    _request_args,
    _ResponseTarget,
    _slack_json,
    _SlackError,
    _ts_key,
)

log = logging.getLogger("standins.slack")


class _WebApiMixin:
    """The Web API (`/api/{method}`) and the response_url of commands and clicks."""

    # ------------------------------------------------------------------ Web API

    async def _handle_api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        args = await _request_args(request)
        token = _bearer(request) or str(args.pop("token", "") or "")
        self.calls.append((method, args))
        log.debug("api call %s", method)
        handler = self._methods.get(method)
        if handler is None:
            return _slack_json({"ok": False, "error": "unknown_method"})
        expected, other = (
            (self.app_token, self.bot_token) if method == "apps.connections.open" else (self.bot_token, self.app_token)
        )
        if not token:
            return _slack_json({"ok": False, "error": "not_authed"})
        if token == other:
            return _slack_json({"ok": False, "error": "not_allowed_token_type"})
        if token != expected:
            return _slack_json({"ok": False, "error": "invalid_auth"})
        limit = self._rate_limits.get(method)
        if limit is not None and limit[0] > 0:
            limit[0] -= 1
            self.rate_limited.append(method)
            return _slack_json({"ok": False, "error": "ratelimited"}, status=429, headers={"Retry-After": str(limit[1])})
        try:
            answer = {"ok": True, **handler(args)}
        except _SlackError as error:
            answer = {"ok": False, "error": str(error)}
        headers = {"X-OAuth-Scopes": BOT_SCOPES} if token == self.bot_token else {}
        return _slack_json(answer, headers=headers)

    def _auth_test(self, args: dict[str, Any]) -> dict[str, Any]:
        return {
            "url": f"https://{self.team_domain}.slack.com/",
            "team": self.team_name,
            "user": self.bot_name,
            "team_id": self.team_id,
            "user_id": self.bot_user_id,
            "bot_id": self.bot_id,
            "is_enterprise_install": False,
        }

    def _chat_post_message(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel_arg(args)
        self._require_postable(channel)
        text, blocks = _message_content(args)
        message = self._bot_message(text, blocks, args.get("thread_ts"))
        self._store(channel, message)
        self._record_sent(
            SentMessage("chat.postMessage", channel, text, blocks, args.get("thread_ts"), ts=message["ts"], raw=args)
        )
        return {"channel": channel, "ts": message["ts"], "message": message}

    def _chat_post_ephemeral(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel_arg(args)
        self._require_postable(channel)
        user = args.get("user")
        if not user:
            raise _SlackError("user_not_found")
        members = self._channels.get(channel, {}).get("members")
        if members and user not in members:
            raise _SlackError("user_not_in_channel")
        text, blocks = _message_content(args)
        ts = self._next_ts()
        self._record_sent(
            SentMessage("chat.postEphemeral", channel, text, blocks, args.get("thread_ts"), user, ts, raw=args)
        )
        return {"message_ts": ts}

    def _chat_update(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel_arg(args)
        failure = self._failures.get(("chat.update", str(args.get("ts") or "")))
        if failure:
            raise _SlackError(failure)
        message = self._find(channel, str(args.get("ts") or ""))
        if message is None:
            raise _SlackError("message_not_found")
        if message.get("bot_id") != self.bot_id:
            raise _SlackError("cant_update_message")
        text, blocks = _message_content(args)
        message.update(text=text, edited={"user": self.bot_user_id, "ts": self._next_ts()})
        if blocks is not None:
            message["blocks"] = blocks
        self._record_sent(
            SentMessage("chat.update", channel, text, blocks, message.get("thread_ts"), ts=message["ts"], raw=args)
        )
        return {"channel": channel, "ts": message["ts"], "text": text, "message": message}

    def _chat_delete(self, args: dict[str, Any]) -> dict[str, Any]:
        """chat.delete (docs.slack.dev/reference/methods/chat.delete): "When used with a bot
        token, this method may delete only messages posted by that bot" (else
        `cant_delete_message`); an unknown ts is `message_not_found`, an unknown channel
        `channel_not_found`. A deleted parent's replies stay (Slack keeps the thread)."""
        channel = self._channel_arg(args)
        ts = str(args.get("ts") or "")
        if channel not in self._channels and channel not in self._history and not channel.startswith("D"):
            raise _SlackError("channel_not_found")
        failure = self._failures.get(("chat.delete", ts))
        if failure:
            raise _SlackError(failure)
        message = self._find(channel, ts)
        if message is None:
            raise _SlackError("message_not_found")
        if message.get("bot_id") != self.bot_id:
            raise _SlackError("cant_delete_message")
        self._history[channel].remove(message)
        self.deleted.append((channel, ts))
        self._notify()
        return {"channel": channel, "ts": ts}

    def _conversations_open(self, args: dict[str, Any]) -> dict[str, Any]:
        users = [u for u in str(args.get("users") or "").split(",") if u]
        if args.get("channel"):
            return {"channel": {"id": args["channel"]}}
        if not users:
            raise _SlackError("users_list_not_supplied")
        refused = next((self._refused_dms[u] for u in users if u in self._refused_dms), None)
        if refused:
            raise _SlackError(refused)
        if len(users) == 1:
            return {"channel": {"id": self.dm_channel(users[0])}, "no_op": True, "already_open": True}
        digest = hashlib.sha256(",".join(sorted(users)).encode()).hexdigest()[:10].upper()
        return {"channel": {"id": f"G{digest}"}}

    def _conversations_replies(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel_arg(args)
        ts = str(args.get("ts") or "")
        if self._find(channel, ts) is None:
            raise _SlackError("thread_not_found")
        thread = [m for m in self._history.get(channel, []) if m["ts"] == ts or m.get("thread_ts") == ts]
        return {"messages": sorted(thread, key=lambda m: _ts_key(m["ts"])), "has_more": False,
                "response_metadata": {"next_cursor": ""}}

    def _conversations_members(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel_arg(args)
        if channel not in self._channels:
            raise _SlackError("channel_not_found")
        return {"members": list(self._channels[channel]["members"]), "response_metadata": {"next_cursor": ""}}

    def _usergroups_users_list(self, args: dict[str, Any]) -> dict[str, Any]:
        group = str(args.get("usergroup") or "")
        if group not in self._usergroups:
            raise _SlackError("no_such_subteam")
        return {"users": list(self._usergroups[group])}

    def _users_info(self, args: dict[str, Any]) -> dict[str, Any]:
        user = self._users.get(str(args.get("user") or ""))
        if user is None:
            raise _SlackError("user_not_found")
        return {"user": user}

    def _apps_connections_open(self, args: dict[str, Any]) -> dict[str, Any]:
        ticket = uuid.uuid4().hex
        self._tickets.add(ticket)
        return {"url": f"ws://127.0.0.1:{self._port}/link/?ticket={ticket}&app_id={self.app_id}"}

    # ------------------------------------------------------------------ response_url

    def _new_response_url(self, channel: str, user: str) -> str:
        key = uuid.uuid4().hex
        self._response_urls[key] = _ResponseTarget(channel, user, self.now())
        return f"{self.url}/commands/{key}"

    async def _handle_response_url(self, request: web.Request) -> web.Response:
        target = self._response_urls.get(request.match_info["key"])
        if target is None:
            return web.json_response({"ok": False, "error": "expired_url"}, status=404)
        # Slack: a response_url can be used "up to 5 times within 30 minutes"
        # (docs.slack.dev/interactivity/handling-user-interaction#message_responses).
        if self.now() - target.created > RESPONSE_URL_SECONDS:
            return web.json_response({"ok": False, "error": "expired_url"}, status=404)
        if target.uses_left <= 0:
            return web.json_response({"ok": False, "error": "used_url"}, status=404)
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            return web.json_response({"ok": False, "error": "invalid_payload"}, status=400)
        target.uses_left -= 1
        text, blocks = body.get("text"), body.get("blocks")
        self._record_sent(
            SentMessage(
                "response_url",
                target.channel,
                text,
                blocks,
                body.get("thread_ts"),
                target.user,
                response_type=body.get("response_type", "ephemeral"),
                replace_original=body.get("replace_original"),
                delete_original=body.get("delete_original"),
                raw=body,
            )
        )
        return web.json_response({"ok": True})
