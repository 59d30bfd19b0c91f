"""`/feedback` on the console connector (`bot chat`, a real process, the real model, a real
SQLite store), and the console's labelled placeholders for unset privacy contacts."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tests.integration.test_console_desk import chat

pytestmark = pytest.mark.integration


def test_feedback_in_bot_chat_rates_the_last_answer(trained_model: Path, tmp_path: Path) -> None:
    run = chat(tmp_path, ["how do I reset my password", "/feedback bad", "/privacy"])
    assert run.returncode == 0, run.stderr
    assert "did not help" in run.stdout and "/human to reach a person" in run.stdout
    assert "[not configured: set [privacy] controller]" in run.stdout  # the console may run without contacts
    with sqlite3.connect(tmp_path / "transcripts.db") as database:
        assert database.execute("SELECT rating, intent, platform FROM ratings").fetchall() == [("bad", "faq_login", "console")]
