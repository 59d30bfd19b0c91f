"""The stand-ins' command lines: a port in use is one line and exit 2, not a traceback (QA)."""

from __future__ import annotations

import socket

import pytest

from standins.discord.cli import main as discord_main
from standins.slack.cli import main as slack_main


@pytest.mark.parametrize("main", [slack_main, discord_main], ids=["slack", "discord"])
def test_a_port_in_use_is_one_line(main, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(SystemExit) as stopped:
            main(["--port", str(port)])
    assert stopped.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "cannot listen on port" in err and "Traceback" not in err and err.count("\n") == 0
