"""What the benchmarks share since issue 15: real model servers and bare Rasa, each in Rasa's
own environment (`rasa_project/.venv`, Python 3.10), driven from the bot's (Python 3.12).

- `start_model_server`: a real `rasa run` with the project's channel, started exactly as `bot`
  starts it (`RasaEnvironment.serve_command` / `.environment`), like the integration tests do;
  `extra_env` adds settings (e.g. thread counts) for one experiment.
- `BareRasa`: a child process in Rasa's environment (`bench/rasa_side/bare_agent.py`) that loads
  the same model with `Agent.load` and times `Agent.handle_text` on request, so a benchmark can
  interleave bare Rasa with the bot's side in the same run.
- `rss_mb`, `hwm_mb`: a process's resident size from /proc (one process, not its children).
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from pathlib import Path

from bot.testing.model_server import MODEL, PROJECT, RASA, ModelServer, children, start_model_server

__all__ = ["MODEL", "PROJECT", "RASA", "ModelServer", "children", "start_model_server"]
REPO = Path(__file__).resolve().parents[1]
BARE_SCRIPT = REPO / "bench" / "rasa_side" / "bare_agent.py"


def _status(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def rss_mb(pid: int) -> float:
    """VmRSS of this one process (its children not included)."""
    return _status(pid, "VmRSS")


def hwm_mb(pid: int) -> float:
    """VmHWM: the process's peak resident size so far."""
    return _status(pid, "VmHWM")


def load_average() -> str:
    """The 1, 5 and 15 minute load averages (2 cores: above 2 means waiting for a core)."""
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


class BareRasa:
    """Bare `Agent.handle_text` in Rasa's environment, one line of JSON per request."""

    def __init__(self, model: Path = MODEL, with_decider: bool = False) -> None:
        env = RASA.environment("unused-bare-rasa-token", 3600)
        command = [str(RASA.python.absolute()), str(BARE_SCRIPT), str(model)]
        if with_decider:
            command.append("--with-decider")
        self._log = tempfile.TemporaryFile("w+")  # Rasa's import-time warnings; shown if it fails
        self._process = subprocess.Popen(
            command, cwd=PROJECT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log, text=True, bufsize=1,
        )
        ready = self._read()
        self.load_seconds = float(ready["loaded_s"])
        self.pid = self._process.pid

    def _read(self) -> dict:
        assert self._process.stdout is not None
        while True:  # a library may print a line of its own: only ours start with "{"
            line = self._process.stdout.readline()
            if not line:
                self._log.seek(0)
                tail = "\n".join(self._log.read().splitlines()[-10:])
                raise RuntimeError(f"bare Rasa child exited ({self._process.poll()}):\n{tail}")
            if line.startswith("{"):
                return json.loads(line)

    def handle(self, sender: str, text: str, decider: bool = False) -> float:
        """Seconds `Agent.handle_text` took in the child (with `decider`: plus the server's
        checks, the encoder beside Rasa as the channel runs it)."""
        assert self._process.stdin is not None
        self._process.stdin.write(json.dumps({"sender": sender, "text": text, "decider": decider}) + "\n")
        self._process.stdin.flush()
        return float(self._read()["seconds"])

    def close(self) -> None:
        if self._process.stdin is not None:
            self._process.stdin.close()
        try:
            self._process.wait(15)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._log.close()


def environ_without_bot() -> dict[str, str]:
    """This environment without the bot's own settings (a benchmark sets its own)."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("BOT_", "SLACK_", "DISCORD_"))}


def bot_side_settings() -> str:
    """The switch interval and `gc.freeze` state of this process (the bot's side), against a bare
    interpreter of the same Python (CPython 3.12 starts with a few hundred objects in its
    permanent generation of its own)."""
    import gc
    import sys

    bare = subprocess.run(
        [sys.executable, "-I", "-S", "-c", "import gc; print(gc.get_freeze_count())"], capture_output=True, text=True
    ).stdout.strip()
    return (
        f"bot side: Python {sys.version.split()[0]}, switch interval {sys.getswitchinterval() * 1000:g} ms (default 5), "
        f"objects in gc's permanent generation {gc.get_freeze_count()} (a bare interpreter: {bare}, so no gc.freeze)"
    )
