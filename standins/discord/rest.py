"""The REST API's plumbing (routes, rate limits) and its user, application, command and guild routes."""

from __future__ import annotations

import hashlib
import logging
import math
import re
import time
from typing import Any, Optional, Union

from aiohttp import web

from .model import (
    _ALL_PERMISSIONS,
    _BOT_PERMISSIONS,
    _NAME_RE,
    THREAD_TYPES,
    ApiError,
    Handler,
    Json,
    _form_error,
    _json_response,
    _RateLimit,
    _read_body,
)

log = logging.getLogger("standins.discord")


class _RestMixin:
    """The REST API's plumbing (routes, rate limits) and its user, application, command and guild routes."""

    # ---------------------------------------------------------------- REST plumbing

    def _build_routes(self) -> list[tuple[str, re.Pattern[str], Handler, bool]]:
        table: list[tuple[str, str, Handler, bool]] = [
            ("GET", r"/users/@me", self._get_me, True),
            ("GET", r"/users/(?P<user_id>\d+)", self._get_user, True),
            ("POST", r"/users/@me/channels", self._create_dm, True),
            ("GET", r"/oauth2/applications/@me", self._get_application, True),
            ("GET", r"/applications/@me", self._get_application, True),
            ("GET", r"/gateway", self._get_gateway, False),
            ("GET", r"/gateway/bot", self._get_gateway_bot, True),
            ("GET", r"/applications/(?P<app>\d+)/commands", self._get_commands, True),
            ("PUT", r"/applications/(?P<app>\d+)/commands", self._put_commands, True),
            ("POST", r"/applications/(?P<app>\d+)/commands", self._post_command, True),
            ("GET", r"/applications/(?P<app>\d+)/guilds/(?P<guild_id>\d+)/commands", self._get_commands, True),
            ("PUT", r"/applications/(?P<app>\d+)/guilds/(?P<guild_id>\d+)/commands", self._put_commands, True),
            ("POST", r"/applications/(?P<app>\d+)/guilds/(?P<guild_id>\d+)/commands", self._post_command, True),
            ("GET", r"/guilds/(?P<guild_id>\d+)", self._get_guild, True),
            ("GET", r"/guilds/(?P<guild_id>\d+)/roles", self._get_roles, True),
            ("GET", r"/guilds/(?P<guild_id>\d+)/channels", self._get_guild_channels, True),
            ("GET", r"/guilds/(?P<guild_id>\d+)/members/(?P<user_id>\d+)", self._get_member, True),
            ("GET", r"/channels/(?P<channel_id>\d+)", self._get_channel, True),
            ("POST", r"/channels/(?P<channel_id>\d+)/messages", self._post_message, True),
            ("GET", r"/channels/(?P<channel_id>\d+)/messages/(?P<message_id>\d+)", self._get_message, True),
            ("PATCH", r"/channels/(?P<channel_id>\d+)/messages/(?P<message_id>\d+)", self._patch_message, True),
            ("DELETE", r"/channels/(?P<channel_id>\d+)/messages/(?P<message_id>\d+)", self._delete_message, True),
            ("POST", r"/channels/(?P<channel_id>\d+)/typing", self._no_content, True),
            ("POST", r"/channels/(?P<channel_id>\d+)/threads", self._post_thread, True),
            ("POST", r"/channels/(?P<channel_id>\d+)/messages/(?P<message_id>\d+)/threads", self._post_thread, True),
            ("DELETE", r"/channels/(?P<channel_id>\d+)", self._delete_channel, True),
            ("PUT", r"/channels/(?P<channel_id>\d+)/thread-members/@me", self._no_content, True),
            ("DELETE", r"/channels/(?P<channel_id>\d+)/thread-members/@me", self._no_content, True),
            ("POST", r"/interactions/(?P<interaction_id>\d+)/(?P<token>[^/]+)/callback", self._callback, False),
            ("POST", r"/webhooks/(?P<app>\d+)/(?P<token>[^/]+)", self._post_followup, False),
            ("GET", r"/webhooks/(?P<app>\d+)/(?P<token>[^/]+)/messages/(?P<message_id>@original|\d+)", self._get_webhook_message, False),
            ("PATCH", r"/webhooks/(?P<app>\d+)/(?P<token>[^/]+)/messages/(?P<message_id>@original|\d+)", self._patch_webhook_message, False),
            ("DELETE", r"/webhooks/(?P<app>\d+)/(?P<token>[^/]+)/messages/(?P<message_id>@original|\d+)", self._delete_webhook_message, False),
        ]
        return [(method, re.compile(pattern), handler, auth) for method, pattern, handler, auth in table]

    async def _rest(self, request: web.Request) -> web.StreamResponse:
        path = "/" + request.match_info["tail"]
        method = request.method
        for route_method, pattern, handler, auth in self._routes:  # noqa: B007 - handler and auth are used after the break
            match = pattern.fullmatch(path)
            if match and route_method == method:
                break
        else:
            log.warning("stand-in has no route for %s %s", method, path)
            return self._answer(method, path, "unknown", _json_response({"message": "404: Not Found", "code": 0}, 404))
        bucket = hashlib.sha1(f"{method} {pattern.pattern}".encode()).hexdigest()[:16]
        if auth and request.headers.get("Authorization") != f"Bot {self.token}":
            return self._answer(method, path, bucket, _json_response({"message": "401: Unauthorized", "code": 0}, 401))
        limited = self._take_rate_limit(method, path)
        if limited is not None:
            return self._answer(method, path, bucket, self._too_many(limited, bucket))
        for outage in self._outages:
            if outage.times > 0 and outage.pattern.fullmatch(path) and outage.method in (None, method):
                outage.times -= 1
                return self._answer(method, path, bucket, _json_response({"message": "503: Service Unavailable", "code": 0}, 503))
        try:
            body, files = await _read_body(request)
            result = await handler(request, body, files, **match.groupdict())
        except ApiError as exc:
            response = _json_response(exc.body(), exc.status)
        else:
            for lost in self._lost_answers:
                if lost.times > 0 and lost.pattern.fullmatch(path) and lost.method in (None, method):
                    lost.times -= 1
                    return self._answer(method, path, bucket, _json_response({"message": "503: Service Unavailable", "code": 0}, 503))
            if isinstance(result, web.StreamResponse):
                response = result
            elif result is None:
                response = web.Response(status=204)
            else:
                status, payload = result if isinstance(result, tuple) else (200, result)
                response = _json_response(payload, status)
        response.headers.update({
            "X-RateLimit-Bucket": bucket, "X-RateLimit-Limit": "50", "X-RateLimit-Remaining": "49",
            "X-RateLimit-Reset": f"{time.time() + 1:.3f}", "X-RateLimit-Reset-After": "1.000",
        })
        return self._answer(method, path, bucket, response)

    def _answer(self, method: str, path: str, bucket: str, response: web.Response) -> web.Response:
        self.requests.append((method, path, response.status))
        log.debug("REST %s %s -> %d", method, path, response.status)
        return response

    def _take_rate_limit(self, method: str, path: str) -> Optional[_RateLimit]:
        for rule in self._rate_limits:
            if rule.times > 0 and rule.pattern.fullmatch(path) and rule.method in (None, method):
                rule.times -= 1
                self.rate_limited += 1
                return rule
        return None

    def _too_many(self, rule: _RateLimit, bucket: str) -> web.Response:
        # discord.py treats a 429 without `Via` or without a JSON body as a Cloudflare ban.
        headers = {
            "Via": "1.1 google", "Retry-After": str(math.ceil(rule.retry_after)),
            "X-RateLimit-Bucket": bucket, "X-RateLimit-Limit": "5", "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset": f"{time.time() + rule.retry_after:.3f}",
            "X-RateLimit-Reset-After": f"{rule.retry_after:.3f}",
            "X-RateLimit-Scope": "global" if rule.is_global else "user",
        }
        if rule.is_global:
            headers["X-RateLimit-Global"] = "true"
        body = {"message": "You are being rate limited.", "retry_after": rule.retry_after, "global": rule.is_global}
        log.info("answering 429 (retry after %.3fs)", rule.retry_after)
        return _json_response(body, 429, headers)

    # ---------------------------------------------------------------- REST: users, app, gateway

    async def _get_me(self, request: web.Request, body: Any, files: list[Json]) -> Json:
        return {**self._bot_user(), "verified": True, "mfa_enabled": False, "email": None, "flags": 0,
                "locale": "en-US", "bio": ""}

    async def _get_user(self, request: web.Request, body: Any, files: list[Json], user_id: str) -> Json:
        if int(user_id) not in self._users:
            raise ApiError(404, 10013, "Unknown User")
        return self._users[int(user_id)]

    async def _create_dm(self, request: web.Request, body: Any, files: list[Json]) -> Json:
        recipient = int((body or {}).get("recipient_id") or 0)
        if recipient not in self._users:
            raise _form_error("recipient_id", "NUMBER_TYPE_COERCE", "Value is not snowflake.")
        return self._channels[self.dm_channel_id(recipient)]

    async def _get_application(self, request: web.Request, body: Any, files: list[Json]) -> Json:
        return {
            "id": str(self.app_id), "name": self.bot_name, "icon": None, "description": "", "summary": "",
            "type": None, "hook": True, "bot_public": True, "bot_require_code_grant": False,
            "verify_key": hashlib.sha256(str(self.app_id).encode()).hexdigest(), "owner": self._owner, "team": None,
            "flags": self._application_flags(), "bot": self._bot_user(), "rpc_origins": [], "redirect_uris": [],
            "interactions_endpoint_url": None, "role_connections_verification_url": None, "tags": [],
            "terms_of_service_url": None, "privacy_policy_url": None, "custom_install_url": None,
            "install_params": {"scopes": ["bot", "applications.commands"], "permissions": str(_BOT_PERMISSIONS)},
            "integration_types_config": {"0": {}}, "approximate_guild_count": len(self._guilds),
        }

    async def _get_gateway(self, request: web.Request, body: Any, files: list[Json]) -> Json:
        return {"url": self.gateway_url}

    async def _get_gateway_bot(self, request: web.Request, body: Any, files: list[Json]) -> Json:
        return {"url": self.gateway_url, "shards": 1, "session_start_limit": {
            "total": 1000, "remaining": 1000 - self.identifies, "reset_after": 86_400_000, "max_concurrency": 1}}

    # ---------------------------------------------------------------- REST: commands

    async def _get_commands(self, request: web.Request, body: Any, files: list[Json], app: str,
                            guild_id: Optional[str] = None) -> list[Json]:
        self._check_app(app)
        return list(self._commands.get(int(guild_id) if guild_id else None, {}).values())

    async def _put_commands(self, request: web.Request, body: Any, files: list[Json], app: str,
                            guild_id: Optional[str] = None) -> list[Json]:
        self._check_app(app)
        scope = self._command_scope(guild_id)
        if not isinstance(body, list):
            raise ApiError(400, 50035, "Invalid Form Body")
        names: set[tuple[str, int]] = set()
        stored: dict[str, Json] = {}
        for index, spec in enumerate(body):
            command = self._command(scope, spec, index)
            key = (command["name"], command["type"])
            if key in names:
                raise _form_error(str(index), "APPLICATION_COMMANDS_DUPLICATE_NAME", "Application command names must be unique")
            names.add(key)
            stored[command["name"]] = command
        self._commands[scope] = stored
        self.synced.append("global" if scope is None else scope)
        log.info("commands synced to %s: %d", "global" if scope is None else f"guild {scope}", len(stored))
        return list(stored.values())

    async def _post_command(self, request: web.Request, body: Any, files: list[Json], app: str,
                            guild_id: Optional[str] = None) -> tuple[int, Json]:
        self._check_app(app)
        scope = self._command_scope(guild_id)
        command = self._command(scope, body or {}, 0)
        self._commands.setdefault(scope, {})[command["name"]] = command
        return 201, command

    def _check_app(self, app: str) -> None:
        if int(app) != self.app_id:
            raise ApiError(403, 50001, "Missing Access")

    def _command_scope(self, guild_id: Optional[str]) -> Optional[int]:
        if guild_id is None:
            return None
        if int(guild_id) not in self._guilds:
            raise ApiError(403, 50001, "Missing Access")
        return int(guild_id)

    def _command(self, scope: Optional[int], spec: Json, index: int) -> Json:
        name, kind = str(spec.get("name") or ""), int(spec.get("type") or 1)
        description = spec.get("description") or ""
        if kind == 1 and (not _NAME_RE.match(name) or name != name.lower()):
            raise _form_error(f"{index}.name", "APPLICATION_COMMAND_INVALID_NAME", "Command name is invalid")
        if kind == 1 and not 1 <= len(description) <= 100:
            raise _form_error(f"{index}.description", "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 100 in length.")
        key = (scope, name, kind)
        if key not in self._command_ids:
            self._command_ids[key] = self._snowflake()
        command = {
            "id": str(self._command_ids[key]), "application_id": str(self.app_id), "version": str(self._snowflake()),
            "type": kind, "name": name, "name_localizations": spec.get("name_localizations"),
            "description": description, "description_localizations": spec.get("description_localizations"),
            "options": spec.get("options") or [], "default_member_permissions": spec.get("default_member_permissions"),
            "nsfw": bool(spec.get("nsfw", False)), "contexts": spec.get("contexts"),
            "integration_types": spec.get("integration_types") or [0],
        }
        if "dm_permission" in spec:
            command["dm_permission"] = spec["dm_permission"]
        if scope is not None:
            command["guild_id"] = str(scope)
        return command

    def _find_command(self, name: str, guild_id: Optional[int]) -> Json:
        scopes: list[Optional[int]] = [guild_id, None] if guild_id is not None else [None]
        for scope in scopes:
            command = self._commands.get(scope, {}).get(name)
            if command is not None and command["type"] == 1:
                if guild_id is None and (command.get("dm_permission") is False or 1 not in (command.get("contexts") or [0, 1])):
                    raise LookupError(f"/{name} is synced but not usable in DMs (contexts/dm_permission)")
                return command
        where = f"to guild {guild_id} or globally" if guild_id else "globally (DMs only see global commands)"
        synced = sorted({n for s in self._commands.values() for n in s})
        raise LookupError(f"/{name} was not synced {where}; did the bot call tree.sync()? synced: {synced}")

    def _command_options(self, command: Json, options: Union[None, dict[str, Any], list[Json]],
                         guild_id: Optional[int]) -> tuple[list[Json], Json]:
        if options is None:
            options = {}
        if isinstance(options, list):
            return options, {}
        specs = {o["name"]: o for o in command.get("options") or []}
        missing = [n for n, o in specs.items() if o.get("required") and n not in options]
        if missing:
            raise ValueError(f"/{command['name']} needs option(s) {missing}")
        result: list[Json] = []
        resolved: Json = {}
        for name, value in options.items():
            if name not in specs:
                raise ValueError(f"/{command['name']} has no option {name!r}; it has {sorted(specs)}")
            kind = specs[name]["type"]
            if kind == 6:  # user
                uid = int(value)
                resolved.setdefault("users", {})[str(uid)] = self._user(uid)
                guild = self._guilds.get(guild_id) if guild_id else None
                if guild is not None and uid in guild.members:
                    member = {**guild.members[uid], "permissions": str(self._permissions(guild, uid))}
                    resolved.setdefault("members", {})[str(uid)] = member
                value = str(uid)
            elif kind == 7:  # channel
                channel = self._channel(int(value))
                resolved.setdefault("channels", {})[str(value)] = {**channel, "permissions": str(_ALL_PERMISSIONS)}
                value = str(value)
            elif kind == 8:  # role
                resolved.setdefault("roles", {})[str(value)] = self._guild(guild_id).roles[int(value)]
                value = str(value)
            result.append({"name": name, "type": kind, "value": value})
        return result, resolved

    # ---------------------------------------------------------------- REST: guilds and channels

    async def _get_guild(self, request: web.Request, body: Any, files: list[Json], guild_id: str) -> Json:
        guild = self._guild_or_404(guild_id)
        payload = self._guild_create(guild)
        for key in ("members", "channels", "threads", "presences", "voice_states", "joined_at", "large",
                    "member_count", "unavailable", "stage_instances", "guild_scheduled_events", "soundboard_sounds"):
            payload.pop(key, None)
        return payload

    async def _get_roles(self, request: web.Request, body: Any, files: list[Json], guild_id: str) -> list[Json]:
        return list(self._guild_or_404(guild_id).roles.values())

    async def _get_guild_channels(self, request: web.Request, body: Any, files: list[Json], guild_id: str) -> list[Json]:
        guild = self._guild_or_404(guild_id)
        return [c for c in self._channels.values() if c.get("guild_id") == str(guild.id) and c["type"] not in THREAD_TYPES]

    async def _get_member(self, request: web.Request, body: Any, files: list[Json], guild_id: str, user_id: str) -> Json:
        guild = self._guild_or_404(guild_id)
        if int(user_id) not in guild.members:
            raise ApiError(404, 10007, "Unknown Member")
        return self._member_with_user(guild, int(user_id))

    async def _get_channel(self, request: web.Request, body: Any, files: list[Json], channel_id: str) -> Json:
        return self._channel_or_404(channel_id)

    async def _no_content(self, request: web.Request, body: Any, files: list[Json], channel_id: str) -> None:
        self._channel_or_404(channel_id)
        return None
