from __future__ import annotations

import stat
from pathlib import Path

import pytest

from bot.privacy.crypto import MasterKeys
from bot.privacy.pseudonym import Pseudonymizer
from bot.privacy.secrets import SecretsError, load_secrets, secrets_with_dev_fallback


def test_environment_key_wins_and_no_file_is_written(tmp_path: Path) -> None:
    environ = {"BOT_PSEUDONYM_KEY": "e" * 40, "BOT_MASTER_KEYS": MasterKeys.generate()}
    secrets, created = secrets_with_dev_fallback(environ, tmp_path / "dev.env")
    assert secrets.pseudonym_key == b"e" * 40 and not created
    assert not (tmp_path / "dev.env").exists()


def test_dev_keys_are_generated_once_with_owner_only_permissions(tmp_path: Path) -> None:
    path = tmp_path / "data" / "dev.env"
    first, created = secrets_with_dev_fallback({}, path)
    assert created and stat.S_IMODE(path.stat().st_mode) == 0o600
    second, created_again = secrets_with_dev_fallback({}, path)
    assert not created_again and first.pseudonym_key == second.pseudonym_key


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({}, "BOT_PSEUDONYM_KEY is not set"),
        ({"BOT_PSEUDONYM_KEY": "short"}, "too short"),
        ({"BOT_PSEUDONYM_KEY": "k" * 40}, "BOT_MASTER_KEYS is not set"),
        ({"BOT_PSEUDONYM_KEY": "k" * 40, "BOT_MASTER_KEYS": "nope"}, "key 1 is not a Fernet key"),
    ],
)
def test_missing_or_weak_keys_are_clear_errors(environ: dict, message: str) -> None:
    with pytest.raises(SecretsError, match=message):
        load_secrets(environ)


def test_pseudonyms_are_stable_keyed_and_platform_qualified() -> None:
    one, other = Pseudonymizer(b"a" * 32), Pseudonymizer(b"b" * 32)
    assert one.fan("slack", "U1") == one.fan("slack", "U1")
    assert one.fan("slack", "U1") != other.fan("slack", "U1")
    assert one.fan("slack", "U1") != one.fan("discord", "U1")
    assert one.conversation("slack", "D1", "U1") != one.conversation("slack", "C1", "U1")
