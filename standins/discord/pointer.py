"""Pointing the real discord.py client at the stand-in (REST base and gateway URL)."""

from __future__ import annotations

from typing import Any

# --------------------------------------------------------------------------------------
# Pointing discord.py at the stand-in
# --------------------------------------------------------------------------------------


class DiscordPointer:
    """What `point_discord_at` returns: call it (or leave its `with` block) to restore."""

    def __init__(self, old_base: str, old_gateway: Any) -> None:
        self._old = (old_base, old_gateway)
        self._restored = False

    def restore(self) -> None:
        if self._restored:
            return
        import discord.gateway
        import discord.http

        discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = self._old
        self._restored = True

    __call__ = restore

    def __enter__(self) -> DiscordPointer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.restore()


def point_discord_at(api_base: str, gateway_url: str) -> DiscordPointer:
    """Send discord.py's REST calls to `api_base` and its gateway connection to `gateway_url`.

    `Route.BASE` is the one REST base: channel messages, interaction callbacks and webhook
    follow-ups (discord/webhook/async_.py builds its URLs with the same `Route`) all use it.
    A plain `Client` connects straight to `DEFAULT_GATEWAY`, then to READY's
    `resume_gateway_url` when it resumes. Process-wide: restore it when done.
    """
    import discord.gateway
    import discord.http
    import yarl

    pointer = DiscordPointer(discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY)
    discord.http.Route.BASE = api_base.rstrip("/")
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(gateway_url)
    return pointer
