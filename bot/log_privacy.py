"""No platform id in the logs above DEBUG, whoever logs it: a filter on the log handlers.

Our own code logs kinds and counts only, but the SDKs log what they see: discord.py's
rate-limit warning names the route (`/channels/<DM channel id>/messages`), slack-sdk and
slack-bolt name channels and users. A handler filter sees every record, from any logger,
so ids are replaced before anything is written; at DEBUG (a developer's own machine)
records pass unchanged.
"""

from __future__ import annotations

import logging
import re

#: Discord snowflakes (17 to 20 digits today; 15 leaves room) and Slack ids (a type letter,
#: then upper-case letters and digits, with at least one digit, e.g. U0123ABCD, C024BE91L).
PLATFORM_ID = re.compile(r"(?<![\w.])(?:\d{15,21}|[UWCDGBTEFSAK](?=[A-Z0-9]*\d)[A-Z0-9]{7,11})(?![\w])")
MASK = "[ID]"


def mask_ids(text: str) -> str:
    return PLATFORM_ID.sub(MASK, text)


class PlatformIdFilter(logging.Filter):
    """Rewrites a record's message (and traceback text) with platform ids masked."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno <= logging.DEBUG:
            return True
        message = record.getMessage()
        masked = mask_ids(message)
        if masked != message:
            record.msg, record.args = masked, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = mask_ids(record.exc_text)
        if record.stack_info:
            record.stack_info = mask_ids(record.stack_info)
        return True


def install(handler: logging.Handler) -> None:
    """Adds the filter to `handler` once."""
    if not any(isinstance(existing, PlatformIdFilter) for existing in handler.filters):
        handler.addFilter(PlatformIdFilter())
