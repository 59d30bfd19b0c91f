"""Slack's text format on the wire, both ways: what Slack delivers and what a person sees.

docs.slack.dev/messaging/formatting-message-text ("Escaping text"): Slack sends `&`, `<`, `>`
as `&amp;`, `&lt;`, `&gt;`, and everything between `<` and `>` is markup: links
`<https://x|label>` / `<https://x>` / `<mailto:a@b|label>`, user mentions `<@U123>`, channels
`<#C123|name>` (or `<#C123>`), user groups `<!subteam^S123>`, specials `<!here>`,
`<!channel>`, `<!everyone>`, dates `<!date^...|fallback>`. An app posting text must escape the
same three characters; Slack shows an unescaped `<@U123>` as a mention.
"""

from __future__ import annotations

import re
from collections.abc import Callable

MARKUP = re.compile(r"<([^<>]*)>")
_TOKEN = re.compile(r"^(?:[@#][UWCGD][A-Z0-9]+(?:\|[^|]*)?|![a-z^][^|]*(?:\|.*)?|(?:https?|mailto|ftp|tel|slack):[^|]*(?:\|.*)?)$")
_ENTITY = re.compile(r"&(?!amp;|lt;|gt;)")


def escape(typed: str) -> str:
    """What Slack makes of the characters a person typed."""
    return typed.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def check_wire(text: str) -> None:
    """Raises ValueError for text Slack would never deliver: a bare `&`, `<` or `>`, or a
    `<...>` that is not markup. Tests must send what Slack sends."""
    if _ENTITY.search(text):
        raise ValueError(f"Slack never delivers a bare '&' (it sends '&amp;'): {text[:60]!r}")
    for match in MARKUP.finditer(text):
        if not _TOKEN.match(match.group(1)):
            raise ValueError(f"Slack never delivers {match.group(0)[:40]!r}: '<' and '>' come as '&lt;' '&gt;'")
    if "<" in MARKUP.sub("", text) or ">" in MARKUP.sub("", text):
        raise ValueError(f"Slack never delivers a bare '<' or '>': {text[:60]!r}")


def shown(text: str, user_name: Callable[[str], str], channel_name: Callable[[str], str]) -> str:
    """What a person sees for a message's `text`: markup rendered, entities decoded."""

    def render(match: re.Match[str]) -> str:
        inner = match.group(1)
        target, _, label = inner.partition("|")
        if target.startswith("@"):
            return "@" + user_name(target[1:])
        if target.startswith("#"):
            return "#" + (label or channel_name(target[1:]))
        if target.startswith("!"):
            return label or "@" + target[1:].split("^")[0]
        return label or target

    return MARKUP.sub(render, text).replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
