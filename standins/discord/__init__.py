"""A local stand-in for Discord's gateway and REST API, for the real discord.py client.

It speaks the gateway protocol (HELLO, heartbeats, IDENTIFY -> READY + GUILD_CREATE, RESUME
with a replay buffer) over an aiohttp websocket and answers the REST routes a bot uses
(login, command sync, channel messages, DMs, threads, interaction callbacks and
follow-ups), with Discord's payload shapes as discord.py 2.7.1 parses them. Tests and
developers act as fans through `send_dm`, `send_guild_message`, `send_slash` and
`click_button`, and read what the bot sent from `sent`.

    async with DiscordStandIn() as standin:
        with point_discord_at(standin.api_base, standin.gateway_url):
            ...  # start a discord.Client with standin.token; await standin.send_dm(...)

Run `python -m standins.discord --port 3002` to try the bot by hand.

One concern per module: `state` (guilds, channels, users, payloads), `gateway`, `rest`
(routing, rate limits, users, commands, guilds), `messages` (messages, permissions, threads),
`interactions`, `control` (the curl API), `cli`, `pointer` (pointing discord.py here),
`server` (the class). Nothing here logs message text at INFO or above.
"""

from .model import (
    API_VERSION,
    BOT_MESSAGE_CHARS,
    CREATE_PUBLIC_THREADS,
    DEFAULT_APP_ID,
    DEFAULT_CHANNEL_ID,
    DEFAULT_GUILD_ID,
    DEFAULT_OWNER_ID,
    DEFAULT_TOKEN,
    DIRECT_MESSAGES,
    EPHEMERAL,
    GUILD_MEMBERS,
    GUILD_MESSAGES,
    GUILDS,
    MESSAGE_CONTENT,
    NITRO_MESSAGE_CHARS,
    PRIVILEGED_INTENTS,
    SEND_MESSAGES,
    SEND_MESSAGES_IN_THREADS,
    ApiError,
    SentMessage,
)
from .pointer import DiscordPointer, point_discord_at
from .server import DiscordStandIn

__all__ = [
    "API_VERSION", "DEFAULT_APP_ID", "DEFAULT_CHANNEL_ID", "DEFAULT_GUILD_ID", "DEFAULT_OWNER_ID", "DEFAULT_TOKEN",
    "DIRECT_MESSAGES", "EPHEMERAL", "GUILD_MEMBERS", "GUILD_MESSAGES", "GUILDS", "MESSAGE_CONTENT",
    "PRIVILEGED_INTENTS", "BOT_MESSAGE_CHARS", "CREATE_PUBLIC_THREADS", "NITRO_MESSAGE_CHARS", "SEND_MESSAGES",
    "SEND_MESSAGES_IN_THREADS", "ApiError", "DiscordPointer", "DiscordStandIn", "SentMessage", "point_discord_at",
]
