from __future__ import annotations

import pytest

from bot.privacy.crypto import CiphertextError, MasterKeyError, MasterKeys, decrypt, encrypt, new_data_key


def test_round_trip_through_a_wrapped_data_key() -> None:
    master = MasterKeys.parse(MasterKeys.generate())
    data_key = new_data_key()
    wrapped = master.wrap(data_key)
    token = encrypt(master.unwrap(wrapped), "my order is late")
    assert b"order" not in token and decrypt(data_key, token) == "my order is late"


def test_rotation_rewraps_under_the_new_key_and_the_old_key_can_go() -> None:
    old, new = MasterKeys.generate(), MasterKeys.generate()
    data_key = new_data_key()
    wrapped = MasterKeys.parse(old).wrap(data_key)
    token = encrypt(data_key, "hello")
    rewrapped = MasterKeys.parse(f"{new},{old}").rewrap(wrapped)
    assert decrypt(MasterKeys.parse(new).unwrap(rewrapped), token) == "hello"


@pytest.mark.parametrize("value", ["", " , ", "not-a-key", f"{MasterKeys.generate()},short"])
def test_malformed_master_keys_are_clear_errors(value: str) -> None:
    with pytest.raises(MasterKeyError, match="BOT_MASTER_KEYS"):
        MasterKeys.parse(value)


def test_wrong_master_key_and_corrupted_or_shredded_ciphertext() -> None:
    wrapped = MasterKeys.parse(MasterKeys.generate()).wrap(new_data_key())
    with pytest.raises(MasterKeyError, match="wrong or missing"):
        MasterKeys.parse(MasterKeys.generate()).unwrap(wrapped)
    data_key = new_data_key()
    token = encrypt(data_key, "secret")
    with pytest.raises(CiphertextError):
        decrypt(data_key, token[:-4] + b"AAAA")
    with pytest.raises(CiphertextError):
        decrypt(new_data_key(), token)  # the fan's key was erased; another key opens nothing
