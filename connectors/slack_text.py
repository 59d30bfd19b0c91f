"""Slack's text format decoded once, at the edge, into the plain text the core, the model,
the store and the desk see.

Slack sends `&`, `<`, `>` as `&amp;`, `&lt;`, `&gt;` and marks links, mentions and specials
up between `<` and `>` (docs.slack.dev/messaging/formatting-message-text). Links become
`label (url)`; people become their display name (never an id; `@someone` when unknown);
channels `#name`; specials (`<!here>`, `<!channel>`, user groups) plain words that ping no one
once escaped again on the way out.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

MARKUP = re.compile(r"<([^<>]*)>")
SOMEONE = "@someone"

#: Looks up a person's display name by Slack user id; returns "" when unknown.
NameOf = Callable[[str], Awaitable[str]]


async def to_plain(text: str, name_of: NameOf) -> str:
    """Plain text from Slack's wire text; user ids are looked up with `name_of`."""
    parts: list[str] = []
    last = 0
    for match in MARKUP.finditer(text):
        parts.append(_unescape(text[last : match.start()]))
        parts.append(await _token(match.group(1), name_of))
        last = match.end()
    parts.append(_unescape(text[last:]))
    return "".join(parts)


async def _token(inner: str, name_of: NameOf) -> str:
    target, _, label = inner.partition("|")
    label = _unescape(label)
    if target.startswith("@"):
        name = await name_of(target[1:])
        return f"@{name}" if name else SOMEONE
    if target.startswith("#"):
        return f"#{label}" if label else "#channel"
    if target.startswith("!"):
        special = target[1:].split("^", 1)[0]
        if special == "subteam":
            return label or "@group"
        if special == "date":
            return label
        return f"@{special}"  # here, channel, everyone: a word again, escaped on the way out
    url = _unescape(target)
    if url.startswith("mailto:") and (not label or label == url[len("mailto:") :]):
        return url[len("mailto:") :]
    if not label or label == url or url.endswith("//" + label):
        return url
    return f"{label} ({url})"


def _unescape(text: str) -> str:
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


async def display_name(client: AsyncWebClient, user: str) -> str:
    """The name a person chose in Slack (users.info), "" when Slack does not say."""
    try:
        profile = (await client.users_info(user=user))["user"].get("profile", {})
    except SlackApiError:
        return ""
    return str(profile.get("display_name") or profile.get("real_name") or "")[:64]
