"""Discord message text and buttons for the assistant's messages.

Every message starts with a small-print line saying who wrote it ("-# " is Discord's
subtext markdown), and pieces stay within Discord's 2,000 characters.
"""

from __future__ import annotations

import re

import discord

from bot.disclosure import AI_LABEL, HUMAN_LABEL
from bot.messages import Kind, Outgoing
from connectors.splitting import split_text

MESSAGE_CHARS = 2000
DESK_LABEL = "AI assistant · for moderators"

CONFIRM_ERASURE = "forget_me:confirm"
CANCEL_ERASURE = "forget_me:cancel"
ANSWER_YES = "answer:yes"  # a pending yes/no question: the click is the fan saying "yes" / "no"
ANSWER_NO = "answer:no"
CONSENT_YES = "consent:yes"  # the consent question's own Yes / No: answers it even once it lapsed as a pending question
CONSENT_NO = "consent:no"
TICKET_ACTION_PREFIX = "ticket:"  # ticket:claim:N, ticket:resolve:N
RATE_PREFIX = "fb:"  # fb:good:TOKEN / fb:bad:TOKEN on a model answer (bot.feedback keeps it within 100 characters)

#: The assistant never pings anyone by accident: no @everyone, roles or users.
NO_PINGS = discord.AllowedMentions(everyone=False, roles=False, users=False, replied_user=False)


def label_of(message: Outgoing) -> str:
    if message.to == "desk":
        return DESK_LABEL
    return AI_LABEL if message.from_ai else HUMAN_LABEL


#: Discord's mention and markup syntax: `<@id>`, `<@!id>`, `<@&id>`, `<#id>`, `<:name:id>`,
#: `<a:name:id>`, `<t:unix>`, `</command:id>` (Discord developer docs, "Message Formatting").
_MARKUP = re.compile(r"<(?=[@#:/]|a:|t:)")


def escape(text: str) -> str:
    """Plain text as Discord shows it literally, once: a moderator who types `<@123>` or
    `<#123>` (say, quoting Slack) must not produce a mention or a channel link on Discord.
    discord.py's `escape_mentions` covers `@everyone`, `@here` and 17-20 digit ids; a zero
    width space after `<` covers the rest of the markup."""
    return _MARKUP.sub("<\u200b", discord.utils.escape_mentions(text))


def render(message: Outgoing) -> list[str]:
    """The message's pieces, each labelled and at most 2,000 characters long."""
    header = f"-# {label_of(message)}\n"
    fence = message.kind is Kind.DATA_EXPORT
    room = MESSAGE_CHARS - len(header) - (8 if fence else 0)
    pieces = split_text(escape(message.text), room)
    return [header + (f"```\n{piece}\n```" if fence else piece) for piece in pieces]


def buttons(message: Outgoing) -> discord.ui.View | None:
    """Buttons for the last piece: erasure confirmation, or a ticket's Claim / Resolve."""
    if message.kind is Kind.ERASURE_CONFIRM_REQUEST:
        items: list[discord.ui.Button[discord.ui.View]] = [
            discord.ui.Button(label="Erase everything", style=discord.ButtonStyle.danger, custom_id=CONFIRM_ERASURE),
            discord.ui.Button(label="Keep my data", style=discord.ButtonStyle.secondary, custom_id=CANCEL_ERASURE),
        ]
    elif message.kind in (Kind.HANDOFF_OFFER, Kind.ASK_BACK, Kind.CONSENT_REQUEST):
        yes, no = (CONSENT_YES, CONSENT_NO) if message.kind is Kind.CONSENT_REQUEST else (ANSWER_YES, ANSWER_NO)
        items = [
            discord.ui.Button(label="Yes", style=discord.ButtonStyle.primary, custom_id=yes),
            discord.ui.Button(label="No", style=discord.ButtonStyle.secondary, custom_id=no),
        ]
    elif message.kind is Kind.HANDOFF_TICKET and message.to == "desk" and message.ticket:
        items = [
            discord.ui.Button(label="Claim", style=discord.ButtonStyle.primary, custom_id=f"{TICKET_ACTION_PREFIX}claim:{message.ticket}"),
            discord.ui.Button(label="Resolve", style=discord.ButtonStyle.secondary, custom_id=f"{TICKET_ACTION_PREFIX}resolve:{message.ticket}"),
        ]
    elif message.kind is Kind.ANSWER and message.rate:
        items = [
            discord.ui.Button(label="Helpful", style=discord.ButtonStyle.secondary, custom_id=f"{RATE_PREFIX}good:{message.rate}"),
            discord.ui.Button(label="Not helpful", style=discord.ButtonStyle.secondary, custom_id=f"{RATE_PREFIX}bad:{message.rate}"),
        ]
    else:
        return None
    view = discord.ui.View(timeout=None)
    for item in items:
        view.add_item(item)
    # Stopped before it is sent: discord.py keeps every unfinished View it sends, with its
    # buttons, in its ViewStore until the view times out (never, with timeout=None) to call
    # their callbacks (discord/abc.py `send`, `state.store_view`); clicks are answered in
    # `DiscordConnector.on_interaction` by custom_id instead, so the store would only grow
    # (5,000 answered fans: 2,500 views, 10,000 buttons kept; bench/soak.py).
    view.stop()
    return view
