"""Connector supervision (issue 11 item 1), with a scripted connector: a crash after serving
restarts that connector with backoff; a crash before serving, or a ConnectorError, ends it."""

from __future__ import annotations

import asyncio
import logging

import pytest

from connectors.base import ConnectorError
from connectors.supervise import supervise


class Scripted:
    name = "scripted"
    max_message_chars = 100

    def __init__(self, outcomes: list[object]) -> None:
        self._outcomes = outcomes
        self.served = False
        self.runs = 0
        self.resets = 0

    async def run(self, bot: object) -> None:
        self.runs += 1
        outcome = self._outcomes.pop(0)
        if outcome == "serve-then-crash":
            self.served = True
            raise KeyError("channel_id")
        if isinstance(outcome, BaseException):
            raise outcome
        self.served = True  # "serve" then close normally

    async def aclose(self) -> None:
        return None

    async def reset(self) -> None:
        self.resets += 1


async def test_a_crash_after_serving_restarts_with_backoff_and_logs_once_each(caplog: pytest.LogCaptureFixture) -> None:
    connector = Scripted(["serve-then-crash", "serve-then-crash", "serve"])
    caplog.set_level(logging.INFO)
    await asyncio.wait_for(supervise(connector, bot=None, first_delay=0.01, max_delay=0.02), 5)  # type: ignore[arg-type]
    assert connector.runs == 3 and connector.resets == 2
    crashes = [r for r in caplog.records if "crashed (KeyError)" in r.getMessage()]
    assert len(crashes) == 2 and "channel_id" not in caplog.text


async def test_a_crash_before_serving_is_a_start_up_error() -> None:
    connector = Scripted([RuntimeError("boom")])
    with pytest.raises(RuntimeError):
        await supervise(connector, bot=None, first_delay=0.01)  # type: ignore[arg-type]
    assert connector.resets == 0


async def test_a_connector_error_is_fatal_even_after_serving() -> None:
    connector = Scripted(["serve-then-crash", ConnectorError("slack: the token was refused")])
    with pytest.raises(ConnectorError):
        await supervise(connector, bot=None, first_delay=0.01)  # type: ignore[arg-type]
