"""No platform id reaches a log handler above DEBUG (issue 11 item 12)."""

from __future__ import annotations

import io
import logging

import pytest

from bot.log_privacy import PlatformIdFilter, mask_ids


@pytest.mark.parametrize(
    "text",
    [
        "We are being rate limited. POST https://discord.com/api/v10/channels/1300000000000000123/messages responded with 429.",
        "channel_not_found for C024BE91L, user U0123ABCD in T0ABCDEF12",
        "interaction 1234567890123456789 token expired",
    ],
)
def test_ids_are_masked(text: str) -> None:
    masked = mask_ids(text)
    assert "[ID]" in masked
    for token in ("1300000000000000123", "C024BE91L", "U0123ABCD", "T0ABCDEF12", "1234567890123456789"):
        assert token not in masked


@pytest.mark.parametrize("text", ["WARNING retention purge removed 12 turn(s)", "HTTP 429 after 3 retries", "ticket #42 CLAIMED", "v10 API"])
def test_ordinary_words_and_counts_are_kept(text: str) -> None:
    assert mask_ids(text) == text


def _logged(level: int, *args: object, exc: bool = False) -> str:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(PlatformIdFilter())
    logger = logging.getLogger("discord.http.test")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        if exc:
            try:
                raise RuntimeError("Unknown Channel 1300000000000000123")
            except RuntimeError:
                logger.exception(*args)  # type: ignore[arg-type]
        else:
            logger.log(level, *args)  # type: ignore[arg-type]
    finally:
        logger.removeHandler(handler)
    return stream.getvalue()


def test_the_handler_filter_masks_sdk_records_with_args_and_tracebacks() -> None:
    line = _logged(logging.WARNING, "rate limited on %s %s", "POST", "/channels/1300000000000000123/messages")
    assert "1300000000000000123" not in line and "/channels/[ID]/messages" in line
    traced = _logged(logging.ERROR, "failed", exc=True)
    assert "1300000000000000123" not in traced and "RuntimeError" in traced


def test_debug_records_pass_unchanged_for_developers() -> None:
    assert "1300000000000000123" in _logged(logging.DEBUG, "GET /channels/%s", "1300000000000000123")
