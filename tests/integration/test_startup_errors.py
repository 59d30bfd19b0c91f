"""`bot run` when a platform's API cannot be reached at start: one line naming the
platform and the cause, exit code 2, no traceback (a real process, the real SDKs)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from bot.privacy.crypto import MasterKeys
from bot.testing.privacy_contacts import PRIVACY_CONTACTS
from tests.integration.conftest import MODEL, REPO

pytestmark = pytest.mark.integration


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.parametrize(
    ("platform", "platform_env", "variable"),
    [
        ("slack", {"SLACK_BOT_TOKEN": "xoxb-x", "SLACK_APP_TOKEN": "xapp-x", "SLACK_API_BASE_URL": "http://127.0.0.1:{port}/api/"}, "SLACK_API_BASE_URL"),
        ("slack", {"SLACK_BOT_TOKEN": "xoxb-x", "SLACK_SIGNING_SECRET": "s", "BOT_SLACK_MODE": "http", "BOT_SLACK_HTTP_PORT": "{free}", "SLACK_API_BASE_URL": "http://127.0.0.1:{port}/api/"}, "SLACK_API_BASE_URL"),
        ("discord", {"DISCORD_TOKEN": "t", "DISCORD_API_BASE_URL": "http://127.0.0.1:{port}/api/v10", "DISCORD_GATEWAY_URL": "ws://127.0.0.1:{port}/"}, "DISCORD_API_BASE_URL"),
    ],
    ids=["slack-socket", "slack-http", "discord"],
)
def test_an_unreachable_platform_api_is_one_line_and_exit_2(
    trained_model: Path, tmp_path: Path, platform: str, platform_env: dict[str, str], variable: str
) -> None:
    port, free = closed_port(), closed_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BOT_", "SLACK_", "DISCORD_"))}
    env.update(
        BOT_PSEUDONYM_KEY="startup-test-pseudonym-key-0123456789abcdef",
        **PRIVACY_CONTACTS,
        BOT_MASTER_KEYS=MasterKeys.generate(),
        BOT_STORE_URL=f"sqlite:///{tmp_path}/transcripts.db",
    )
    env.update({name: value.format(port=port, free=free) for name, value in platform_env.items()})
    init = subprocess.run([sys.executable, "-m", "bot", "db", "init"], cwd=REPO, env=env, capture_output=True, text=True)
    assert init.returncode == 0, init.stderr  # a deployment never creates its store by itself
    run = subprocess.run(
        [sys.executable, "-m", "bot", "--model", str(MODEL), "run"],
        cwd=REPO, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=300,
    )
    assert run.returncode == 2, run.stderr
    # The model server loads beside the connectors: its progress line may come first.
    progress = ("bot: loading the dialogue model", "bot: still loading the dialogue model")
    assert [line for line in run.stderr.splitlines() if not line.startswith(progress)] == [
        f"bot: {platform}: cannot reach the API at http://127.0.0.1:{port}/api/{'v10' if platform == 'discord' else ''} "
        f"(connection refused); check the network or {variable} ([{platform}] api_base_url)"
    ]
