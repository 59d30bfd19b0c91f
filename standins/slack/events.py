"""Acting as people: Events API events, slash commands and button clicks, shaped as Slack sends them."""

from __future__ import annotations

import time
import uuid
from typing import Any, Optional

from .model import VERIFICATION_TOKEN, Delivery, _channel_type, buttons_of
from .text import check_wire


class _EventsMixin:
    """Acting as people: Events API events, slash commands and button clicks, shaped as Slack sends them."""

    # ------------------------------------------------------------------ deliveries

    async def send_event(
        self,
        event: dict[str, Any],
        *,
        event_id: Optional[str] = None,
        retry: int = 0,
        mode: Optional[str] = None,
        signature: Optional[str] = None,
        timestamp: Optional[str] = None,
    ) -> Delivery:
        """Any Events API event, wrapped in an event_callback like Slack's."""
        if event_id is None:
            self._event_count += 1
            event_id = f"Ev{self._event_count:08d}"
        body = {
            "token": VERIFICATION_TOKEN,
            "team_id": self.team_id,
            "context_team_id": self.team_id,
            "context_enterprise_id": None,
            "api_app_id": self.app_id,
            "event": event,
            "type": "event_callback",
            "event_id": event_id,
            "event_time": int(float(event.get("event_ts") or time.time())),
            "authorizations": [
                {
                    "enterprise_id": None,
                    "team_id": self.team_id,
                    "user_id": self.bot_user_id,
                    "is_bot": True,
                    "is_enterprise_install": False,
                }
            ],
            "is_ext_shared_channel": False,
            "event_context": f"4-{event_id}",
        }
        return await self._deliver("events_api", body, mode, retry, signature, timestamp)

    async def send_dm(
        self,
        user_id: str,
        text: str,
        thread_ts: Optional[str] = None,
        event_id: Optional[str] = None,
        retry: int = 0,
        *,
        mode: Optional[str] = None,
        signature: Optional[str] = None,
        timestamp: Optional[str] = None,
    ) -> Delivery:
        """A fan's direct message to the bot (a `message.im` event)."""
        event = self._user_message(user_id, self.dm_channel(user_id), text, thread_ts, channel_type="im")
        return await self.send_event(
            event, event_id=event_id, retry=retry, mode=mode, signature=signature, timestamp=timestamp
        )

    async def send_mention(
        self,
        user_id: str,
        channel_id: str,
        text: str,
        thread_ts: Optional[str] = None,
        event_id: Optional[str] = None,
        retry: int = 0,
        *,
        mode: Optional[str] = None,
        signature: Optional[str] = None,
        timestamp: Optional[str] = None,
    ) -> Delivery:
        """`@bot text` in a channel (an `app_mention` event)."""
        event = self._user_message(user_id, channel_id, f"<@{self.bot_user_id}> {text}", thread_ts, channel_type=None)
        event["type"] = "app_mention"
        return await self.send_event(
            event, event_id=event_id, retry=retry, mode=mode, signature=signature, timestamp=timestamp
        )

    async def send_channel_message(
        self,
        user_id: Optional[str],
        channel_id: str,
        text: str,
        thread_ts: Optional[str] = None,
        bot_id: Optional[str] = None,
        subtype: Optional[str] = None,
        event_id: Optional[str] = None,
        retry: int = 0,
        *,
        mode: Optional[str] = None,
        signature: Optional[str] = None,
        timestamp: Optional[str] = None,
    ) -> Delivery:
        """A plain message in a channel: a moderator's reply in a desk thread, or, with
        `bot_id`, a bot's message (the bot's own, to check it ignores itself)."""
        event = self._user_message(user_id, channel_id, text, thread_ts, channel_type=_channel_type(channel_id))
        if bot_id is not None:
            event.pop("client_msg_id", None)
            event["bot_id"] = bot_id
        if subtype is not None:
            event["subtype"] = subtype
        return await self.send_event(
            event, event_id=event_id, retry=retry, mode=mode, signature=signature, timestamp=timestamp
        )

    async def send_command(
        self,
        command: str,
        text: str,
        user_id: str,
        channel_id: Optional[str] = None,
        *,
        mode: Optional[str] = None,
        signature: Optional[str] = None,
        timestamp: Optional[str] = None,
    ) -> Delivery:
        """A slash command; `channel_id` defaults to the user's DM with the bot. Slack never
        retries commands, so neither does the stand-in."""
        channel_id = channel_id or self.dm_channel(user_id)
        payload = {
            "token": VERIFICATION_TOKEN,
            "team_id": self.team_id,
            "team_domain": self.team_domain,
            "channel_id": channel_id,
            "channel_name": "directmessage" if channel_id.startswith("D") else self._channel_name(channel_id),
            "user_id": user_id,
            "user_name": self._user_name(user_id),
            "command": command,
            "text": text,
            "api_app_id": self.app_id,
            "is_enterprise_install": "false",
            "response_url": self._new_response_url(channel_id, user_id),
            "trigger_id": self._trigger_id(),
        }
        return await self._deliver("slash_commands", payload, mode, 0, signature, timestamp)

    async def click_button(
        self,
        user_id: str,
        action_id: str,
        value: str,
        channel_id: str,
        message_ts: str,
        thread_ts: Optional[str] = None,
        block_id: str = "b",
        *,
        mode: Optional[str] = None,
        signature: Optional[str] = None,
        timestamp: Optional[str] = None,
        actions: Optional[Any] = None,
    ) -> Delivery:
        """A click on a button of a message (a `block_actions` interactive payload).

        `actions` replaces the payload's `actions` list as sent (e.g. `[]`): Slack documents it
        as "contains data from the specific interactive component that was used" without
        promising an element (docs.slack.dev, "block_actions payload"), and an app must not
        fall over when a signed payload lacks one; the button check is then skipped."""
        found = self._find(channel_id, message_ts)
        # A click can only name a button the message carries: Slack sends the element's own
        # action_id and value (Block Kit "block_actions payload"); a message the stand-in does
        # not know (posted by an earlier process) stands in with the button as given.
        if actions is None and found is not None and found.get("blocks") and (action_id, value) not in buttons_of(found):
            raise LookupError(f"message {message_ts} has no button {action_id!r} with that value")
        message = dict(found or {"type": "message", "ts": message_ts, "text": ""})
        thread_ts = thread_ts or message.get("thread_ts")
        if thread_ts:
            message["thread_ts"] = thread_ts
        payload = {
            "type": "block_actions",
            "user": {"id": user_id, "username": self._user_name(user_id), "name": self._user_name(user_id),
                     "team_id": self.team_id},
            "api_app_id": self.app_id,
            "token": VERIFICATION_TOKEN,
            "container": {"type": "message", "message_ts": message_ts, "channel_id": channel_id, "is_ephemeral": False},
            "trigger_id": self._trigger_id(),
            "team": {"id": self.team_id, "domain": self.team_domain},
            "enterprise": None,
            "is_enterprise_install": False,
            "channel": {"id": channel_id, "name": self._channel_name(channel_id)},
            "message": message,
            "state": {"values": {}},
            "response_url": self._new_response_url(channel_id, user_id),
            "actions": [
                {
                    "action_id": action_id,
                    "block_id": block_id,
                    "value": value,
                    "type": "button",
                    "action_ts": f"{time.time():.6f}",
                }
            ] if actions is None else actions,
        }
        return await self._deliver("interactive", payload, mode, 0, signature, timestamp)

    async def redeliver_as_new(self, delivery: Delivery) -> Delivery:
        """The same message again under a NEW event_id (same ts, same client_msg_id): Slack
        does this, e.g. when a message reaches an app through two subscriptions or after an
        internal retry that is not an Events API retry; `X-Slack-Retry-Num` is absent."""
        return await self.send_event(dict(delivery.payload["event"]), mode=delivery.mode)

    async def send_subtype(
        self,
        subtype: str,
        user_id: Optional[str],
        channel_id: str,
        text: str = "",
        *,
        thread_ts: Optional[str] = None,
        files: Optional[list[str]] = None,
        ts: Optional[str] = None,
        mode: Optional[str] = None,
    ) -> Delivery:
        """A `message` event with a subtype, shaped as Slack sends it
        (docs.slack.dev/reference/events/message#subtypes):
        - file_share: a person's files with a caption; `files` are file names.
        - thread_broadcast: a thread reply also sent to the channel (`thread_ts`, `root`).
        - me_message: `/me waves`.
        - message_changed / message_deleted: about the message `ts` (hidden; no top-level user).
        - channel_join: `<@U> has joined the channel`.
        - bot_message: another integration's post (`bot_id`, `username`, no user)."""
        channel_type = _channel_type(channel_id)
        if subtype in ("message_changed", "message_deleted"):
            original = self._find(channel_id, ts or "")
            if original is None:
                raise KeyError(f"no message {ts} in {channel_id}")
            now = self._next_ts()
            event: dict[str, Any] = {"type": "message", "subtype": subtype, "hidden": True, "channel": channel_id,
                                     "channel_type": channel_type, "ts": now, "event_ts": now,
                                     "previous_message": dict(original)}
            if subtype == "message_changed":
                check_wire(text)
                original.update(text=text, edited={"user": original.get("user"), "ts": now})
                event["message"] = dict(original)
            else:
                self._history[channel_id].remove(original)
                event["deleted_ts"] = original["ts"]
            return await self.send_event(event, mode=mode)
        if subtype == "channel_join":
            assert user_id is not None
            self._channels.setdefault(channel_id, {"members": [], "name": channel_id.lower()})["members"].append(user_id)
            text = f"<@{user_id}> has joined the channel"
        event = self._user_message(None if subtype == "bot_message" else user_id, channel_id, text, thread_ts,
                                   channel_type=channel_type)
        event["subtype"] = subtype
        if subtype == "bot_message":
            event.update(bot_id="B0OTHER", username="another-integration")
        if subtype == "file_share":
            event["upload"] = False
            event["display_as_bot"] = False
            event["files"] = [
                {"id": "F" + uuid.uuid4().hex[:10].upper(), "name": name, "title": name, "mimetype": "image/png",
                 "filetype": name.rsplit(".", 1)[-1], "user": user_id, "size": 1024, "mode": "hosted",
                 "url_private": f"https://files.slack.com/files-pri/{self.team_id}/{name}"}
                for name in files or ["screenshot.png"]
            ]
        if subtype == "thread_broadcast":
            root = self._find(channel_id, thread_ts or "")
            event["root"] = dict(root) if root else {"ts": thread_ts}
        return await self.send_event(event, mode=mode)

    async def redeliver(self, delivery: Delivery) -> Delivery:
        """The same payload again, as Slack's retry: same event_id, retry number + 1."""
        return await self._deliver(delivery.kind, delivery.payload, delivery.mode, delivery.retry + 1)

    def _user_message(
        self, user_id: Optional[str], channel: str, text: str, thread_ts: Optional[str], channel_type: Optional[str]
    ) -> dict[str, Any]:
        check_wire(text)  # tests send what Slack sends: escaped, with markup (see text.py)
        ts = self._next_ts()
        event: dict[str, Any] = {"type": "message", "text": text, "ts": ts, "team": self.team_id, "channel": channel,
                                 "event_ts": ts}
        if user_id is not None:
            event["user"] = user_id
            event["client_msg_id"] = str(uuid.uuid4())
        if thread_ts:
            event["thread_ts"] = thread_ts
        if channel_type is not None:
            event["channel_type"] = channel_type
        stored = {k: v for k, v in event.items() if k not in ("channel", "event_ts", "channel_type")}
        self._store(channel, stored)
        if "parent_user_id" in stored:
            event["parent_user_id"] = stored["parent_user_id"]
        return event

    def _user_name(self, user_id: str) -> str:
        user = self._users.get(user_id)
        return str(user["name"]) if user else user_id.lower()

    def _channel_name(self, channel_id: str) -> str:
        channel = self._channels.get(channel_id)
        return str(channel["name"]) if channel else channel_id.lower()

    def _trigger_id(self) -> str:
        return f"{int(time.time())}.{self.team_id}.{uuid.uuid4().hex[:20]}"
