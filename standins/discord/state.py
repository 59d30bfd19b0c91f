"""Platform state: guilds, channels, users, members, messages, and the payloads built from them."""

from __future__ import annotations

import logging
import re
import secrets
import time
from collections.abc import Sequence
from typing import Optional

from .model import (
    _ADMINISTRATOR,
    _ALL_PERMISSIONS,
    _BOT_PERMISSIONS,
    _EVERYONE_PERMISSIONS,
    _ROLE_MENTION,
    _USER_MENTION,
    BOT_MESSAGE_CHARS,
    DEFAULT_OWNER_ID,
    DISCORD_EPOCH_MS,
    DM,
    EPHEMERAL,
    GUILD_MEMBERS,
    GUILD_PRESENCES,
    GUILD_TEXT,
    LOADING,
    MESSAGE_CONTENT,
    NITRO_MESSAGE_CHARS,
    PRIVILEGED_INTENTS,
    THREAD_TYPES,
    ApiError,
    Json,
    SentMessage,
    _custom_ids,
    _form_error,
    _Guild,
    _Interaction,
    _iso,
    _RateLimit,
)

log = logging.getLogger("standins.discord")


class _StateMixin:
    """Platform state: guilds, channels, users, members, messages, and the payloads built from them."""

    # ---------------------------------------------------------------- world building

    def add_guild(self, guild_id: int, name: str, *, owner_id: int = DEFAULT_OWNER_ID) -> None:
        """A guild the bot is in, with @everyone (id = guild id) and the bot's managed role."""
        guild = _Guild(id=guild_id, name=name, owner_id=owner_id, joined_at=_iso())
        guild.roles[guild_id] = self._role_payload(guild_id, "@everyone", 0, _EVERYONE_PERMISSIONS)
        bot_role = self._snowflake()
        guild.roles[bot_role] = self._role_payload(bot_role, self.bot_name, 1, _BOT_PERMISSIONS, bot_id=self.bot_user_id)
        guild.members[self.bot_user_id] = self._member_payload([bot_role])
        self._guilds[guild_id] = guild
        self._queue_event("GUILD_CREATE", lambda: self._guild_create(guild))

    def add_channel(self, channel_id: int, name: str, guild_id: Optional[int] = None) -> None:
        """A text channel (type 0)."""
        guild = self._guild(guild_id)
        position = sum(1 for c in self._channels.values() if c.get("guild_id") == str(guild.id) and c["type"] == 0)
        self._channels[channel_id] = {
            "id": str(channel_id), "type": GUILD_TEXT, "guild_id": str(guild.id), "name": name,
            "position": position, "parent_id": None, "topic": None, "nsfw": False, "permission_overwrites": [],
            "rate_limit_per_user": 0, "last_message_id": None, "flags": 0, "default_auto_archive_duration": 1440,
        }
        self._queue_event("CHANNEL_CREATE", lambda: dict(self._channels[channel_id]))

    def add_role(self, role_id: int, name: str, *, guild_id: Optional[int] = None, permissions: int = 0) -> None:
        guild = self._guild(guild_id)
        guild.roles[role_id] = self._role_payload(role_id, name, len(guild.roles), permissions)
        self._queue_event("GUILD_ROLE_CREATE", lambda: {"guild_id": str(guild.id), "role": guild.roles[role_id]})

    def add_user(self, user_id: int, username: str, *, bot: bool = False, global_name: Optional[str] = None) -> None:
        """A Discord user who is not (necessarily) in a guild: enough to DM the bot."""
        self._users[user_id] = self._user_payload(user_id, username, bot=bot, global_name=global_name)

    def add_member(
        self,
        user_id: int,
        username: str,
        roles: Sequence[int] = (),
        bot: bool = False,
        *,
        guild_id: Optional[int] = None,
        nick: Optional[str] = None,
    ) -> None:
        """A user who is a member of the guild (the default one unless `guild_id`)."""
        guild = self._guild(guild_id)
        unknown = [r for r in roles if r not in guild.roles]
        if unknown:
            raise KeyError(f"unknown role ids {unknown}: add_role() them first")
        if user_id not in self._users:
            self.add_user(user_id, username, bot=bot)
        guild.members[user_id] = self._member_payload(list(roles), nick=nick)
        self._queue_event("GUILD_MEMBER_ADD", lambda: {**self._member_with_user(guild, user_id), "guild_id": str(guild.id)})

    def close_dms(self, user_id: int) -> None:
        """The user no longer accepts DMs: the bot's messages to their DM channel answer 403 (50007)."""
        self._closed_dms.add(user_id)

    def open_dms(self, user_id: int) -> None:
        self._closed_dms.discard(user_id)

    def rate_limit(
        self,
        path_regex: str = r"/channels/.*/messages",
        times: int = 1,
        retry_after: float = 0.3,
        *,
        method: Optional[str] = None,
        is_global: bool = False,
    ) -> None:
        """The next `times` REST calls whose path (after /api/v10) fully matches answer 429."""
        self._rate_limits.append(_RateLimit(re.compile(path_regex), method, times, retry_after, is_global))

    def unavailable(self, path_regex: str, times: int = 1, *, method: Optional[str] = None) -> None:
        """The next `times` REST calls whose path fully matches answer 503 Service Unavailable,
        as Discord's API does during an outage (discord.status.com). discord.py retries 500,
        502, 504 and 524 itself and raises `DiscordServerError` at once for a 503
        (discord/http.py, `HTTPClient.request`), so a test sees the bot's own handling."""
        self._outages.append(_RateLimit(re.compile(path_regex), method, times, 0.0, False))

    def reset_outages(self) -> None:
        """Ends every `unavailable` and `lose_answers` rule: Discord answers normally again."""
        self._outages.clear()
        self._lost_answers.clear()

    def lose_answers(self, path_regex: str, times: int = 1, *, method: Optional[str] = None) -> None:
        """The next `times` matching REST calls are carried out, but answered 503, as when a
        proxy or the network loses Discord's answer: the client cannot tell that its message
        was made (a retry would make a second one, unless it sends an enforced nonce)."""
        self._lost_answers.append(_RateLimit(re.compile(path_regex), method, times, 0.0, False))

    def dm_channel_id(self, user_id: int) -> int:
        """The DM channel between the bot and a user (created on first use, then stable)."""
        self._user(user_id)
        if user_id not in self._dm_by_user:
            channel_id = self._snowflake()
            self._dm_by_user[user_id] = channel_id
            self._channels[channel_id] = {
                "id": str(channel_id), "type": DM, "last_message_id": None, "flags": 0,
                "recipients": [self._users[user_id]],
            }
        return self._dm_by_user[user_id]

    @property
    def commands(self) -> dict[str, Json]:
        """Synced commands by name; a guild command hides a global one of the same name."""
        merged: dict[str, Json] = {}
        for scope in [None] + [s for s in self._commands if s is not None]:
            merged.update(self._commands.get(scope, {}))
        return merged

    def commands_in(self, guild_id: Optional[int] = None) -> dict[str, Json]:
        """Commands synced to one scope (None: global)."""
        return dict(self._commands.get(guild_id, {}))

    def messages(self, channel_id: Optional[int] = None) -> list[Json]:
        """Every stored message (users' and the bot's), oldest first."""
        return [m for m in self._messages.values() if channel_id is None or int(m["channel_id"]) == channel_id]

    def clear(self) -> None:
        """Forget what was recorded (sent, threads, deletions, rate-limit count and requests)."""
        self.sent.clear()
        self.threads.clear()
        self.deleted.clear()
        self.requests.clear()
        self.rate_limited = 0

    # ---------------------------------------------------------------- payload builders

    def _snowflake(self) -> int:
        ms = int(time.time() * 1000) - DISCORD_EPOCH_MS
        candidate = (ms << 22) | (1 << 17) | (next(self._ids) & 0xFFF)
        self._last_id = max(candidate, self._last_id + 1)
        return self._last_id

    @staticmethod
    def _user_payload(user_id: int, username: str, *, bot: bool = False, global_name: Optional[str] = None) -> Json:
        user: Json = {"id": str(user_id), "username": username, "discriminator": "0", "global_name": global_name,
                      "avatar": None, "avatar_decoration_data": None, "public_flags": 0}
        if bot:
            user["bot"] = True
        return user

    @staticmethod
    def _role_payload(role_id: int, name: str, position: int, permissions: int, *, bot_id: Optional[int] = None) -> Json:
        role: Json = {"id": str(role_id), "name": name, "color": 0,
                      "colors": {"primary_color": 0, "secondary_color": None, "tertiary_color": None},
                      "hoist": False, "icon": None, "unicode_emoji": None, "position": position,
                      "permissions": str(permissions), "managed": bot_id is not None, "mentionable": False, "flags": 0}
        if bot_id is not None:
            role["tags"] = {"bot_id": str(bot_id)}
        return role

    @staticmethod
    def _member_payload(roles: list[int], *, nick: Optional[str] = None) -> Json:
        return {"roles": [str(r) for r in roles], "nick": nick, "avatar": None, "banner": None,
                "joined_at": _iso(), "premium_since": None, "deaf": False, "mute": False, "pending": False,
                "flags": 0, "communication_disabled_until": None}

    def _bot_user(self) -> Json:
        return self._users[self.bot_user_id]

    def _application_flags(self) -> int:
        allowed = PRIVILEGED_INTENTS if self.allowed_intents is None else self.allowed_intents
        flags = 0
        if allowed & GUILD_PRESENCES:
            flags |= 1 << 13  # GATEWAY_PRESENCE_LIMITED
        if allowed & GUILD_MEMBERS:
            flags |= 1 << 15  # GATEWAY_GUILD_MEMBERS_LIMITED
        if allowed & MESSAGE_CONTENT:
            flags |= 1 << 19  # GATEWAY_MESSAGE_CONTENT_LIMITED
        return flags

    def _user(self, user_id: int) -> Json:
        try:
            return self._users[user_id]
        except KeyError:
            raise KeyError(f"unknown user {user_id}: add_user() or add_member() first") from None

    def _guild(self, guild_id: Optional[int]) -> _Guild:
        try:
            return self._guilds[self.guild_id if guild_id is None else guild_id]
        except KeyError:
            raise KeyError(f"unknown guild {guild_id}: add_guild() first") from None

    def _guild_or_404(self, guild_id: str) -> _Guild:
        if int(guild_id) not in self._guilds:
            raise ApiError(404, 10004, "Unknown Guild")
        return self._guilds[int(guild_id)]

    def _channel(self, channel_id: int) -> Json:
        try:
            return self._channels[channel_id]
        except KeyError:
            raise KeyError(f"unknown channel {channel_id}: add_channel() first") from None

    def _channel_or_404(self, channel_id: str) -> Json:
        if int(channel_id) not in self._channels:
            raise ApiError(404, 10003, "Unknown Channel")
        return self._channels[int(channel_id)]

    def _message_or_404(self, channel_id: str, message_id: str) -> Json:
        self._channel_or_404(channel_id)
        message = self._messages.get(int(message_id))
        if message is None or message["channel_id"] != str(channel_id):
            raise ApiError(404, 10008, "Unknown Message")
        return message

    def _permissions(self, guild: _Guild, user_id: int) -> int:
        if user_id == guild.owner_id:
            return _ALL_PERMISSIONS
        value = int(guild.roles[guild.id]["permissions"])
        for role_id in guild.members.get(user_id, {}).get("roles", []):
            value |= int(guild.roles[int(role_id)]["permissions"])
        return _ALL_PERMISSIONS if value & _ADMINISTRATOR else value

    def _member_with_user(self, guild: _Guild, user_id: int) -> Json:
        return {**guild.members[user_id], "user": self._users[user_id]}

    def _guild_create(self, guild: _Guild) -> Json:
        gid = str(guild.id)
        channels = [{k: v for k, v in c.items() if k != "guild_id"} for c in self._channels.values()
                    if c.get("guild_id") == gid and c["type"] not in THREAD_TYPES]
        threads = [t for t in self._channels.values()
                   if t.get("guild_id") == gid and t["type"] in THREAD_TYPES and not t["thread_metadata"]["archived"]]
        return {
            "id": gid, "name": guild.name, "icon": None, "splash": None, "discovery_splash": None, "banner": None,
            "owner_id": str(guild.owner_id), "application_id": None, "afk_channel_id": None, "afk_timeout": 300,
            "verification_level": 0, "default_message_notifications": 0, "explicit_content_filter": 0,
            "roles": list(guild.roles.values()), "emojis": [], "stickers": [], "features": [], "mfa_level": 0,
            "system_channel_id": None, "system_channel_flags": 0, "rules_channel_id": None,
            "public_updates_channel_id": None, "safety_alerts_channel_id": None, "max_members": 500000,
            "vanity_url_code": None, "description": None, "premium_tier": 0, "premium_subscription_count": 0,
            "preferred_locale": "en-US", "nsfw_level": 0, "premium_progress_bar_enabled": False,
            "joined_at": guild.joined_at, "large": False, "unavailable": False, "lazy": True,
            "member_count": len(guild.members), "voice_states": [], "presences": [],
            "members": [self._member_with_user(guild, uid) for uid in guild.members],
            "channels": channels, "threads": threads, "stage_instances": [], "guild_scheduled_events": [],
            "soundboard_sounds": [],
        }

    def _mentions(self, content: str, guild_id: Optional[str]) -> tuple[list[Json], list[str]]:
        guild = self._guilds.get(int(guild_id)) if guild_id else None
        users: list[Json] = []
        seen: set[int] = set()
        for raw in _USER_MENTION.findall(content):
            uid = int(raw)
            if uid in seen or uid not in self._users:
                continue
            seen.add(uid)
            mention = dict(self._users[uid])
            if guild is not None and uid in guild.members:
                mention["member"] = dict(guild.members[uid])
            users.append(mention)
        roles = [r for r in _ROLE_MENTION.findall(content) if guild is not None and int(r) in guild.roles]
        return users, roles

    def _base_message(self, channel_id: int, author: Json, content: str, *, kind: int = 0) -> Json:
        channel = self._channels[channel_id]
        mentions, role_mentions = self._mentions(content, channel.get("guild_id"))
        return {
            "id": str(self._snowflake()), "channel_id": str(channel_id), "type": kind, "content": content,
            "author": author, "timestamp": _iso(), "edited_timestamp": None, "tts": False,
            "mention_everyone": False, "mentions": mentions, "mention_roles": role_mentions,
            "attachments": [], "embeds": [], "components": [], "pinned": False, "flags": 0,
        }

    def _user_message(self, user_id: int, channel_id: int, content: str, *, as_bot: bool = False,
                      reply_to: Optional[int] = None, attachments: Sequence[str] = ()) -> Json:
        if len(content) > NITRO_MESSAGE_CHARS:
            raise ValueError(f"Discord refuses a user message over {NITRO_MESSAGE_CHARS} characters (Nitro's limit)")
        author = dict(self._user(user_id))
        if as_bot:
            author["bot"] = True
        message = self._base_message(channel_id, author, content)
        message["attachments"] = self._attachments(channel_id, [
            {"filename": name, "size": 1024, "content_type": "image/png" if name.endswith(".png") else None}
            for name in attachments
        ])
        if reply_to is not None:
            self._reference(message, {"message_id": reply_to})
        self._store(message)
        return self._gateway_message(message)

    def _bot_message(self, channel_id: int, body: Json, files: list[Json], *, kind: int = 0,
                     interaction: Optional[_Interaction] = None) -> Json:
        content = body.get("content") or ""
        if len(content) > BOT_MESSAGE_CHARS:
            raise _form_error("content", "BASE_TYPE_MAX_LENGTH", "Must be 2000 or fewer in length.")
        if not (content or body.get("embeds") or files or body.get("components") or body.get("sticker_ids")
                or body.get("poll") or int(body.get("flags") or 0) & LOADING or kind == 18):
            raise ApiError(400, 50006, "Cannot send an empty message")
        # A component's custom_id is 1-100 characters (Discord "Component Reference"; the
        # installed discord.py ui/button.py: "Can only be up to 100 characters").
        if any(not 1 <= len(custom_id) <= 100 for custom_id in _custom_ids(body.get("components") or [])):
            raise _form_error("components", "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 100 in length.")
        message = self._base_message(channel_id, self._bot_user(), content, kind=kind)
        message.update({"embeds": body.get("embeds") or [], "components": body.get("components") or [],
                        "flags": int(body.get("flags") or 0), "tts": bool(body.get("tts")),
                        "attachments": self._attachments(channel_id, files)})
        if body.get("nonce") is not None:
            message["nonce"] = body["nonce"]
        if body.get("message_reference"):
            self._reference(message, body["message_reference"])
        if interaction is not None:
            message["webhook_id"] = str(self.app_id)
            message["application_id"] = str(self.app_id)
            user = self._users[interaction.user_id]
            owners = {"0": str(interaction.guild_id)} if interaction.guild_id else {"0": "0"}
            message["interaction_metadata"] = {"id": str(interaction.id), "type": interaction.type, "user": user,
                                               "authorizing_integration_owners": owners}
            if interaction.type == 2:
                message["type"] = 20  # CHAT_INPUT_COMMAND
                message["interaction"] = {"id": str(interaction.id), "type": 2, "name": interaction.name, "user": user}
            else:
                message["interaction_metadata"]["interacted_message_id"] = str(interaction.message_id)
        return message

    def _reference(self, message: Json, reference: Json) -> None:
        target_id = int(reference.get("message_id") or 0)
        target = self._messages.get(target_id)
        if target is None and reference.get("fail_if_not_exists", True):
            raise _form_error("message_reference", "MESSAGE_REFERENCE_UNKNOWN_MESSAGE", "Unknown message")
        channel = self._channels[int(message["channel_id"])]
        ref: Json = {"type": 0, "message_id": str(target_id), "channel_id": message["channel_id"]}
        if channel.get("guild_id"):
            ref["guild_id"] = channel["guild_id"]
        message["message_reference"] = ref
        message["referenced_message"] = target
        message["type"] = 19  # REPLY

    def _attachments(self, channel_id: int, files: list[Json]) -> list[Json]:
        result = []
        for f in files:
            aid = self._snowflake()
            url = f"{self.base_url}/attachments/{channel_id}/{aid}/{f['filename']}"
            result.append({"id": str(aid), "filename": f["filename"], "size": f["size"], "url": url,
                           "proxy_url": url, "content_type": f["content_type"]})
        return result

    def _edit(self, message: Json, body: Json, files: list[Json]) -> None:
        if "content" in body:
            content = body["content"] or ""
            if len(content) > 2000:
                raise _form_error("content", "BASE_TYPE_MAX_LENGTH", "Must be 2000 or fewer in length.")
            message["content"] = content
            message["mentions"], message["mention_roles"] = self._mentions(
                content, self._channels.get(int(message["channel_id"]), {}).get("guild_id"))
        for key in ("embeds", "components"):
            if key in body:
                message[key] = body[key] or []
        if "flags" in body:
            message["flags"] = int(body["flags"] or 0) | (message["flags"] & EPHEMERAL)
        if "content" in body or "embeds" in body or "components" in body:
            message["flags"] &= ~LOADING
        if files:
            message["attachments"] = self._attachments(int(message["channel_id"]), files)
        elif "attachments" in body:
            keep = {str(a.get("id")) for a in body["attachments"] or []}
            message["attachments"] = [a for a in message["attachments"] if a["id"] in keep]
        message["edited_timestamp"] = _iso()

    def _store(self, message: Json) -> None:
        self._messages[int(message["id"])] = message
        channel = self._channels.get(int(message["channel_id"]))
        if channel is not None:
            channel["last_message_id"] = message["id"]
            if channel["type"] in THREAD_TYPES:
                channel["message_count"] += 1
                channel["total_message_sent"] += 1

    def _gateway_message(self, message: Json) -> Json:
        """A stored message as MESSAGE_CREATE carries it: plus guild_id and the author's member."""
        channel = self._channels.get(int(message["channel_id"]), {})
        payload = dict(message)
        if channel.get("guild_id"):
            payload["guild_id"] = channel["guild_id"]
            guild = self._guilds[int(channel["guild_id"])]
            author_id = int(message["author"]["id"])
            if author_id in guild.members and "webhook_id" not in message:
                payload["member"] = dict(guild.members[author_id])
        return payload

    def _record(self, kind: str, channel_id: Optional[int], body: Json, message: Optional[Json], files: list[Json],
                *, interaction_id: Optional[int] = None, callback_type: Optional[int] = None,
                message_id: Optional[int] = None, raw: Optional[Json] = None) -> None:
        sent = SentMessage(
            kind=kind, channel_id=channel_id, content=body.get("content"), embeds=body.get("embeds") or [],
            components=body.get("components") or [], flags=int(body.get("flags") or 0),
            allowed_mentions=body.get("allowed_mentions"), message_reference=body.get("message_reference"),
            interaction_id=interaction_id, callback_type=callback_type, raw=raw if raw is not None else body,
            message_id=message_id if message_id is not None else (int(message["id"]) if message else None),
            files=[f["filename"] for f in files],
        )
        self.sent.append(sent)
        length = len(sent.content or "")
        log.info("bot sent %s to channel %s (%d chars)", kind, channel_id, length)
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def _place(self, user_id: int, channel_id: Optional[int], guild: bool) -> tuple[int, Optional[int]]:
        """Where an interaction happens: (channel id, guild id or None for a DM)."""
        self._user(user_id)
        if not guild:
            return (self.dm_channel_id(user_id) if channel_id is None else channel_id), None
        channel_id = self.channel_id if channel_id is None else channel_id
        channel = self._channel(channel_id)
        if "guild_id" not in channel:
            raise ValueError(f"channel {channel_id} is not a guild channel (guild=False for DMs)")
        guild_id = int(channel["guild_id"])
        if user_id not in self._guilds[guild_id].members:
            raise KeyError(f"user {user_id} is not a member of guild {guild_id}: add_member() first")
        return channel_id, guild_id

    def _new_interaction(self, kind: int, user_id: int, channel_id: int, guild_id: Optional[int],
                         *, name: Optional[str] = None) -> _Interaction:
        interaction = _Interaction(id=self._snowflake(), token=f"standin-{secrets.token_urlsafe(24)}", type=kind,
                                   channel_id=channel_id, guild_id=guild_id, user_id=user_id,
                                   created=time.monotonic(), name=name)
        self._interactions[interaction.id] = interaction
        return interaction

    def _interaction_payload(self, interaction: _Interaction, data: Json) -> Json:
        channel = dict(self._channels[interaction.channel_id])
        payload: Json = {
            "id": str(interaction.id), "application_id": str(self.app_id), "type": interaction.type, "data": data,
            "channel_id": str(interaction.channel_id), "token": interaction.token, "version": 1,
            "locale": "en-US", "entitlements": [], "entitlement_sku_ids": [], "attachment_size_limit": 10 * 1024 * 1024,
        }
        if interaction.guild_id is not None:
            guild = self._guilds[interaction.guild_id]
            member = {**self._member_with_user(guild, interaction.user_id),
                      "permissions": str(self._permissions(guild, interaction.user_id))}
            channel["permissions"] = member["permissions"]
            payload.update({
                "guild_id": str(guild.id), "guild": {"id": str(guild.id), "locale": "en-US", "features": []},
                "guild_locale": "en-US", "member": member, "context": 0,
                "app_permissions": str(self._permissions(guild, self.bot_user_id)),
                "authorizing_integration_owners": {"0": str(guild.id)},
            })
        else:
            payload.update({"user": self._users[interaction.user_id], "context": 1,
                            "app_permissions": str(_EVERYONE_PERMISSIONS),
                            "authorizing_integration_owners": {"0": "0"}})
        payload["channel"] = channel
        return payload
