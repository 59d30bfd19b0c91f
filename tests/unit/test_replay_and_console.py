"""Replay's line format and the console's rendering, on the fake engine."""

from __future__ import annotations

import io
import json

from bot.core import Bot
from bot.replay import replay
from connectors.console import ConsoleConnector

FIELDS = {"to", "user", "text", "kind", "intent", "confidence", "ticket"}


async def run_replay(bot: Bot, script: str) -> tuple[list[dict], str, int]:
    out, err = io.StringIO(), io.StringIO()
    malformed = await replay(bot, io.StringIO(script), out, err)
    return [json.loads(line) for line in out.getvalue().splitlines()], err.getvalue(), malformed


async def test_replay_prints_one_json_line_per_message(bot: Bot) -> None:
    lines, err, malformed = await run_replay(bot, '{"user": "ann", "text": "hello"}\n{"user": 7, "text": "refund"}\n')
    assert malformed == 0 and err == ""
    assert [(line["user"], line["kind"]) for line in lines] == [
        ("ann", "disclosure"),
        ("ann", "answer"),
        ("7", "disclosure"),
        ("7", "answer"),
    ]
    assert all(set(line) == FIELDS for line in lines)
    assert lines[1]["intent"] == "greet" and lines[1]["confidence"] == 0.97 and lines[1]["to"] == "user"
    assert lines[0]["intent"] is None and lines[0]["ticket"] is None


async def test_malformed_lines_are_reported_by_number_and_the_run_goes_on(bot: Bot) -> None:
    script = "\n".join(
        [
            '{"user": "ann", "text": "hello"}',
            "{not json",
            '["a list"]',
            '{"user": "ann"}',
            '{"user": "ann", "moderator": "m", "text": "x"}',
            '{"user": null, "text": "x"}',
            '{"user": "ann", "text": "refund"}',
        ]
    )
    lines, err, malformed = await run_replay(bot, script)
    assert malformed == 5
    for number in (2, 3, 4, 5, 6):
        assert f"line {number}:" in err
    assert [line["kind"] for line in lines] == ["disclosure", "answer", "answer"]


async def test_moderator_lines_reach_the_desk(bot: Bot) -> None:
    lines, _, malformed = await run_replay(bot, '{"moderator": "mod1", "ticket": "last", "text": "/claim"}\n')
    assert malformed == 0
    assert lines == [
        {"to": "desk", "user": "mod1", "text": lines[0]["text"], "kind": "refused", "intent": None, "confidence": None, "ticket": None}
    ]  # mod1 is not a configured moderator (and there is no ticket)


async def test_console_prefixes_ai_messages_and_ends_cleanly_at_end_of_input(bot: Bot) -> None:
    out = io.StringIO()
    await ConsoleConnector(stdin=io.StringIO("hello\n/privacy\n"), stdout=out).run(bot)
    printed = out.getvalue().splitlines()
    assert printed[0].startswith("[AI assistant] Hi!")
    assert all(line.startswith("[AI assistant]") or line.startswith(" ") for line in printed)
    assert any("(only you can see this)" in line for line in printed)
