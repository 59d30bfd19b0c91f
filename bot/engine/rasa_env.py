"""Rasa's own environment (Python 3.10, `rasa==3.6.21`, `rasa_project/.venv`): the bot
(Python 3.12) never imports Rasa; it runs Rasa's commands there as child processes.

Why two environments: Rasa 3.6 supports no Python newer than 3.10, which left upstream
support in October 2026; the bot, which holds the keys and faces the internet, runs on a
supported interpreter (docs/model-server.md).
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from bot.quiet import quiet_environment


class RasaEnvironmentError(FileNotFoundError):
    """Rasa's environment is not installed where the config points; one line, exit 2."""


class TrainingError(RuntimeError):
    """Training failed; the message carries the last lines of Rasa's output."""


@dataclass(frozen=True)
class RasaEnvironment:
    """`venv`: the virtual environment holding Rasa; `project_dir`: the Rasa project (its
    `credentials.yml`, `endpoints.yml` and `addons` package)."""

    venv: Path
    project_dir: Path

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    def check(self) -> None:
        """Raises `RasaEnvironmentError` when the environment or the project is missing."""
        if not self.python.is_file():
            raise RasaEnvironmentError(
                f"no Rasa environment at {self.venv} (Python 3.10 with rasa==3.6.21): run `make setup`"
            )
        for name in ("credentials.yml", "endpoints.yml", "addons"):
            if not (self.project_dir / name).exists():
                raise RasaEnvironmentError(f"{self.project_dir} lacks {name}: it is not this product's Rasa project")

    def environment(self, token: str, tracker_idle_seconds: float) -> dict[str, str]:
        """The model server's environment: the quiet settings (telemetry off, warnings only),
        the shared secret and the trackers' idle limit."""
        env = quiet_environment()
        env.update({"BOT_ENGINE_TOKEN": token, "BOT_ENGINE_TRACKER_IDLE_SECONDS": f"{tracker_idle_seconds:g}"})
        return env

    def serve_command(
        self, model_path: Path, host: str, port: int, certificate: Optional[Path] = None, key: Optional[Path] = None
    ) -> list[str]:
        """`rasa run` with the project's channel and tracker store; Rasa's REST API stays off
        (no `--enable-api`), so nothing can read a tracker."""
        command = [
            str(self.python.absolute()), "-m", "addons.serve", "run",  # `rasa run`, skops imported first
            "--model", str(model_path.absolute()),
            "--credentials", "credentials.yml",
            "--endpoints", "endpoints.yml",
            "--interface", host,
            "--port", str(port),
        ]  # fmt: skip
        if certificate is not None and key is not None:
            command += ["--ssl-certificate", str(certificate.absolute()), "--ssl-keyfile", str(key.absolute())]
        return command

    def train(self, model_path: Path, force: bool = False) -> bool:
        """Trains `model_path` in Rasa's environment when it is missing or its inputs changed;
        returns whether it trained. Raises `TrainingError` or `RasaEnvironmentError`."""
        self.check()
        command = [str(self.python.absolute()), "-m", "addons.train", "--model", str(model_path.absolute())]
        if force:
            command.append("--force")
        completed = subprocess.run(command, cwd=self.project_dir, env=quiet_environment(), capture_output=True, text=True)
        if completed.returncode != 0:
            tail = "\n".join((completed.stdout + completed.stderr).strip().splitlines()[-15:])
            raise TrainingError(f"training failed (exit {completed.returncode}):\n{tail}")
        return completed.stdout.strip().splitlines()[-1:] == ["trained"]
