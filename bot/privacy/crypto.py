"""Envelope encryption: one data key per fan, wrapped by the operator's master keys.

Erasing a fan deletes their data key first (crypto-shredding): transcript rows copied
before erasure stay unreadable unless the key table was copied too. Rotation rewraps the
small data keys, never the transcript rows. Fernet tokens carry a plaintext timestamp of
when they were made; the privacy notice says so.
"""

from __future__ import annotations

from collections.abc import Sequence

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

MASTER_KEYS_VAR = "BOT_MASTER_KEYS"


class MasterKeyError(ValueError):
    """A master key that is missing, malformed or does not open the stored data keys."""


class CiphertextError(ValueError):
    """A stored value that does not decrypt: corrupted, or its data key was erased."""


class MasterKeys:
    """The operator's keys: the first encrypts, all decrypt (so rotation needs no downtime)."""

    def __init__(self, keys: Sequence[str]) -> None:
        if not keys:
            raise MasterKeyError(f"{MASTER_KEYS_VAR} is not set: export one or more comma-separated Fernet keys")
        fernets = []
        for position, key in enumerate(keys, start=1):
            try:
                fernets.append(Fernet(key.strip().encode()))
            except (ValueError, TypeError):
                raise MasterKeyError(
                    f"{MASTER_KEYS_VAR}: key {position} is not a Fernet key (32 url-safe base64-encoded bytes)"
                ) from None
        self._multi = MultiFernet(fernets)
        self.count = len(fernets)

    @classmethod
    def parse(cls, value: str) -> MasterKeys:
        return cls([part for part in value.split(",") if part.strip()])

    @staticmethod
    def generate() -> str:
        return Fernet.generate_key().decode()

    def wrap(self, data_key: bytes) -> bytes:
        return self._multi.encrypt(data_key)

    def unwrap(self, wrapped: bytes) -> bytes:
        try:
            return self._multi.decrypt(wrapped)
        except InvalidToken:
            raise MasterKeyError(
                f"{MASTER_KEYS_VAR} does not open the stored data keys: a key is wrong or missing"
            ) from None

    def rewrap(self, wrapped: bytes) -> bytes:
        """Re-encrypts a wrapped data key under the first master key."""
        try:
            return self._multi.rotate(wrapped)
        except InvalidToken:
            raise MasterKeyError(f"{MASTER_KEYS_VAR} does not open a stored data key: a key is wrong or missing") from None


def new_data_key() -> bytes:
    return Fernet.generate_key()


def encrypt(data_key: bytes, plaintext: str) -> bytes:
    return Fernet(data_key).encrypt(plaintext.encode("utf-8"))


def decrypt(data_key: bytes, token: bytes) -> str:
    try:
        return Fernet(data_key).decrypt(token).decode("utf-8")
    except InvalidToken:
        raise CiphertextError("stored text does not decrypt: corrupted, or its key was erased") from None
