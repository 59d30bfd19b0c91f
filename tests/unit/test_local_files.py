"""Every folder the bot creates for local data is 0700 and its files 0600, under the usual
umask 022 (which would otherwise give new folders 0755)."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.cli import main
from bot.privacy.secrets import secrets_with_dev_fallback


@pytest.fixture(autouse=True)
def umask_022() -> Iterator[None]:
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_dev_keys_folder_and_its_missing_parents_are_private(tmp_path: Path) -> None:
    path = tmp_path / ".data" / "keys" / "dev-keys.env"
    secrets_with_dev_fallback({}, path)
    assert mode(tmp_path / ".data") == 0o700 and mode(tmp_path / ".data" / "keys") == 0o700
    assert mode(path) == 0o600
    assert mode(tmp_path) == 0o700  # pytest's own; an existing folder is left as it is


def test_an_existing_dev_keys_file_others_can_read_is_tightened(tmp_path: Path) -> None:
    path = tmp_path / "dev-keys.env"
    secrets_with_dev_fallback({}, path)
    os.chmod(path, 0o644)
    secrets_with_dev_fallback({}, path)
    assert mode(path) == 0o600


def test_a_first_run_with_the_default_paths_makes_data_owner_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What a fresh checkout does: dev keys, then a new SQLite store, in ./.data."""
    monkeypatch.chdir(tmp_path)
    assert main(["db", "init"]) == 0
    data = tmp_path / ".data"
    assert mode(data) == 0o700
    assert {p.name for p in data.iterdir()} >= {"dev-keys.env", "transcripts.db"}
    for path in data.iterdir():
        assert mode(path) & 0o077 == 0, path.name


def test_every_missing_folder_of_a_sqlite_store_and_the_spool_is_private(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    store = tmp_path / "var" / "bot" / "transcripts.db"
    keys = tmp_path / "secret" / "keys.db"
    spool = tmp_path / "spool" / "bot" / "spool.db"
    assert main([
        "--set", f"store.url=sqlite:///{store}", "--set", f"store.keys_url=sqlite:///{keys}",
        "--set", f"store.spool_path={spool}", "db", "init",
    ]) == 0
    for folder in (tmp_path / "var", tmp_path / "var" / "bot", tmp_path / "secret", tmp_path / "spool", spool.parent):
        assert mode(folder) == 0o700, folder
    assert mode(store) == 0o600 and mode(keys) == 0o600


def test_an_existing_store_file_others_can_read_is_tightened(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["db", "init"]) == 0
    database = tmp_path / ".data" / "transcripts.db"
    os.chmod(database, 0o644)
    assert main(["db", "upgrade"]) == 0
    assert mode(database) == 0o600
