"""`bot run` with platforms: which connectors start, and the one-line errors when half-configured."""

from __future__ import annotations

import pytest

from bot.cli import main
from bot.config import ConfigError, load_config
from bot.testing.privacy_contacts import PRIVACY_CONTACTS
from connectors.launch import configured_platforms

SLACK = {"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_APP_TOKEN": "xapp-1"}


def test_no_tokens_means_no_platforms() -> None:
    assert configured_platforms(load_config(environ={}), environ={}).connectors == []


def test_slack_tokens_start_slack_with_the_console_desk() -> None:
    platforms = configured_platforms(load_config(environ={}), environ=SLACK)
    assert [c.name for c in platforms.connectors] == ["slack"]
    assert platforms.console_desk is not None and platforms.router.desk is platforms.console_desk.desk


def test_both_platforms_and_a_desk_on_either() -> None:
    environ = {**SLACK, "DISCORD_TOKEN": "abc"}
    on_slack = configured_platforms(load_config(environ={"BOT_HANDOFF_DESK": "slack:CDESK"}), environ=environ)
    assert [c.name for c in on_slack.connectors] == ["slack", "discord"]
    assert on_slack.router.desk is on_slack.connectors[0].desk  # type: ignore[attr-defined]
    on_discord = configured_platforms(load_config(environ={"BOT_HANDOFF_DESK": "discord:123"}), environ=environ)
    assert on_discord.router.desk is on_discord.connectors[1].desk  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("environ", "settings", "message"),
    [
        ({"SLACK_BOT_TOKEN": "xoxb-1"}, {}, "SLACK_APP_TOKEN"),
        ({"SLACK_BOT_TOKEN": "xoxb-1"}, {"BOT_SLACK_MODE": "http"}, "SLACK_SIGNING_SECRET"),
        (SLACK, {"BOT_HANDOFF_DESK": "discord:123"}, "DISCORD_TOKEN is not set"),
        ({"DISCORD_TOKEN": "abc"}, {"BOT_HANDOFF_DESK": "slack:C1"}, "SLACK_BOT_TOKEN is not set"),
    ],
)
def test_half_configured_platforms_fail_with_one_line(environ: dict[str, str], settings: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        configured_platforms(load_config(environ=settings), environ=environ)


def test_bot_run_with_a_platform_refuses_the_generated_dev_keys(
    monkeypatch: pytest.MonkeyPatch, tmp_path, capsys: pytest.CaptureFixture[str]  # type: ignore[no-untyped-def]
) -> None:
    model = tmp_path / "model.tar.gz"
    model.write_bytes(b"not really a model")
    for name, value in {**SLACK, **PRIVACY_CONTACTS}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("BOT_PSEUDONYM_KEY", raising=False)
    monkeypatch.delenv("BOT_MASTER_KEYS", raising=False)
    assert main(["--model", str(model), "run"]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "BOT_PSEUDONYM_KEY is not set" in error


@pytest.mark.parametrize("missing", sorted(PRIVACY_CONTACTS))
def test_bot_run_with_a_platform_refuses_empty_privacy_contacts(
    monkeypatch: pytest.MonkeyPatch, tmp_path, capsys: pytest.CaptureFixture[str], missing: str  # type: ignore[no-untyped-def]
) -> None:
    """Fans on a platform must be told who the controller and the DPO are (GDPR Art. 13)."""
    model = tmp_path / "model.tar.gz"
    model.write_bytes(b"not really a model")
    for name, value in {**SLACK, **PRIVACY_CONTACTS, missing: "  "}.items():
        monkeypatch.setenv(name, value)
    assert main(["--model", str(model), "run"]) == 2
    error = capsys.readouterr().err
    key = missing.removeprefix("BOT_PRIVACY_").lower()
    assert error.count("\n") == 1 and error.startswith(f"bot: config error: privacy.{key} is empty")
