"""The control API the command line's users drive with curl (be a fan, read what the bot sent)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from .model import Json, _text


class _ControlMixin:
    """The control API the command line's users drive with curl (be a fan, read what the bot sent)."""

    # ---------------------------------------------------------------- control API (for the CLI)

    async def _control_dm(self, request: web.Request) -> web.Response:
        return await self._control(request, "message_id", lambda body, user: self.send_dm(user, _text(body)))

    async def _control_message(self, request: web.Request) -> web.Response:
        return await self._control(request, "message_id", lambda body, user: self.send_guild_message(
            user, int(body.get("channel") or self.channel_id), _text(body), mention_bot=bool(body.get("mention_bot"))))

    async def _control_slash(self, request: web.Request) -> web.Response:
        return await self._control(request, "interaction_id", lambda body, user: self.send_slash(
            str(body.get("name") or body.get("command") or "").lstrip("/"), user, body.get("options"),
            guild=bool(body.get("guild", True))))

    async def _control_click(self, request: web.Request) -> web.Response:
        return await self._control(request, "interaction_id", lambda body, user: self.click_button(
            user, str(body["custom_id"]), int(body["message_id"]) if body.get("message_id") else None,
            guild=bool(body.get("guild", True))))

    async def _control_sent(self, request: web.Request) -> web.Response:
        return web.json_response([s.to_json() for s in self.sent])

    async def _control(self, request: web.Request, key: str,
                       action: Callable[[Json, int], Awaitable[int]]) -> web.Response:
        """Act as a user for the control API; unknown user ids join the default guild."""
        try:
            body = await request.json()
            user_id = int(body.get("user") or 4242)
            if user_id not in self._guild(None).members:
                self.add_member(user_id, str(body.get("username") or f"fan{user_id}"))
            value = await action(body, user_id)
        except (LookupError, ValueError, TypeError, RuntimeError, AttributeError) as exc:
            return web.json_response({"error": str(exc)}, status=400)
        return web.json_response({key: str(value)})
