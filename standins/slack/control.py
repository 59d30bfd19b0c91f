"""The control API the command line's users drive with curl (be a fan or a moderator, read what the bot sent)."""

from __future__ import annotations

from dataclasses import asdict

from aiohttp import web

from .model import _delivery_summary


class _ControlMixin:
    """The control API the command line's users drive with curl (be a fan or a moderator, read what the bot sent)."""

    # ------------------------------------------------------------------ control API (offline trials)

    async def _control_dm(self, request: web.Request) -> web.Response:
        body = await request.json()
        delivery = await self.send_dm(body["user"], body["text"], thread_ts=body.get("thread_ts"))
        return web.json_response(_delivery_summary(delivery))

    async def _control_message(self, request: web.Request) -> web.Response:
        body = await request.json()
        delivery = await self.send_channel_message(
            body["user"], body["channel"], body["text"], thread_ts=body.get("thread_ts")
        )
        return web.json_response(_delivery_summary(delivery))

    async def _control_command(self, request: web.Request) -> web.Response:
        body = await request.json()
        delivery = await self.send_command(body["command"], body.get("text", ""), body["user"], body.get("channel"))
        return web.json_response(_delivery_summary(delivery))

    async def _control_sent(self, request: web.Request) -> web.Response:
        return web.json_response([asdict(m) for m in self.sent])
