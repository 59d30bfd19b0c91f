"""Choosing what a worker serves: `bot run --no-slack` / `--no-discord`, `[slack] enabled`,
`BOT_DISCORD_ENABLED`, and the one-line errors for a worker told something contradictory."""

from __future__ import annotations

import pytest

from bot.cli import _config, _parser, main
from bot.config import ConfigError, load_config
from bot.leader import SoleProcess, leader_lock
from connectors.discord_gateway import GatewayHolder
from connectors.launch import configured_platforms, worker_locks

BOTH = {"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_APP_TOKEN": "xapp-1", "DISCORD_TOKEN": "abc"}


def test_run_flags_switch_a_platform_off() -> None:
    args = _parser().parse_args(["run", "--no-slack"])
    config = _config(args)
    assert not config.slack.enabled and config.discord.enabled
    assert [c.name for c in configured_platforms(config, environ=BOTH).connectors] == ["discord"]
    config = _config(_parser().parse_args(["run", "--no-discord"]))
    assert config.slack.enabled and not config.discord.enabled
    assert [c.name for c in configured_platforms(config, environ=BOTH).connectors] == ["slack"]


def test_config_and_environment_switch_a_platform_off() -> None:
    assert [c.name for c in configured_platforms(load_config(environ={}), environ=BOTH).connectors] == ["slack", "discord"]
    from_env = load_config(environ={"BOT_SLACK_ENABLED": "false"})
    assert [c.name for c in configured_platforms(from_env, environ=BOTH).connectors] == ["discord"]
    from_set = load_config(environ={}, assignments=["discord.enabled=false"])
    assert [c.name for c in configured_platforms(from_set, environ=BOTH).connectors] == ["slack"]


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"BOT_SLACK_ENABLED": "false", "BOT_DISCORD_ENABLED": "false"}, "would serve no platform"),
        ({"BOT_SLACK_ENABLED": "false", "BOT_HANDOFF_DESK": "slack:C1"}, "slack is switched off on this worker"),
        ({"BOT_DISCORD_ENABLED": "false", "BOT_HANDOFF_DESK": "discord:123"}, "discord is switched off on this worker"),
    ],
)
def test_contradictions_fail_with_one_line(settings: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as raised:
        configured_platforms(load_config(environ=settings), environ=BOTH)
    assert "\n" not in str(raised.value)


def test_bot_run_no_slack_with_a_slack_desk_exits_2_with_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name, value in BOTH.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("BOT_HANDOFF_DESK", "slack:CDESK")
    assert main(["run", "--no-slack"]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "--no-slack" in error and "handoff.desk" in error


def test_discord_runs_under_the_gateway_lock_and_its_desk_follows_it() -> None:
    config = load_config(environ={"BOT_HANDOFF_DESK": "discord:123"})
    locks = worker_locks(config)
    assert locks.jobs is locks.discord_gateway  # only the gateway holder can post to a Discord desk
    platforms = configured_platforms(config, environ=BOTH, locks=locks)
    discord = platforms.connectors[1]
    assert isinstance(discord, GatewayHolder) and discord.lock is locks.discord_gateway
    assert platforms.router.desk is discord.desk
    on_slack = worker_locks(load_config(environ={"BOT_HANDOFF_DESK": "slack:C1"}))
    assert on_slack.jobs is not on_slack.discord_gateway


def test_sqlite_is_always_the_leader_and_postgresql_is_not_until_it_locks() -> None:
    sole = leader_lock("sqlite:///x.db", "background-jobs")
    assert isinstance(sole, SoleProcess) and sole.leading
    advisory = leader_lock("postgresql://127.0.0.1:9/nowhere", "background-jobs")
    assert not advisory.leading  # nothing connects before it is asked to
