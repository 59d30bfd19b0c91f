"""The store's keys: the master keys must open a stored data key, and the pseudonym key must be
the one the store was created with (its fingerprint is recorded), before anything is written.
"""

from __future__ import annotations

import hashlib
import hmac

from sqlalchemy import insert, inspect, select
from sqlalchemy.engine import Engine

from bot.privacy.crypto import MasterKeys
from bot.privacy.database import StoreError, describe, first_line
from bot.privacy.schema import data_keys, store_meta

#: Data keys (and per-fan choices, recent turns) held in memory at most, per store.
DATA_KEY_CACHE = 10_000


class KeyMismatchError(RuntimeError):
    """BOT_PSEUDONYM_KEY is not the key the store was created with; one line for the operator."""


PSEUDONYM_FINGERPRINT = "pseudonym_key_fingerprint"


def pseudonym_key_fingerprint(pseudonym_key: bytes) -> str:
    """HMAC-SHA256 of a fixed label under the key: identifies the key, reveals nothing of it."""
    return hmac.new(pseudonym_key, b"fan-assistant pseudonym key fingerprint v1", hashlib.sha256).hexdigest()


def check_master_keys(keys_engine: Engine, master: MasterKeys) -> None:
    """Raises `MasterKeyError` unless the master keys open a stored data key (if any).
    Reads only, and only a table that exists: it runs before any migration."""
    try:
        with keys_engine.connect() as connection:
            if not inspect(connection).has_table("data_keys"):
                return
            sample = connection.execute(select(data_keys.c.wrapped).limit(1)).scalar()
    except Exception as error:
        raise StoreError(f"cannot open the store ({describe(str(keys_engine.url))}): {type(error).__name__}: {first_line(error)}") from None
    if sample is not None:
        master.unwrap(sample)


def check_pseudonym_key(engine: Engine, pseudonym_key: bytes) -> None:
    """Raises `KeyMismatchError` when the store records another pseudonym key's fingerprint.
    A store from before migration 0003 has none yet: it records this key's on opening."""
    try:
        with engine.connect() as connection:
            if not inspect(connection).has_table("store_meta"):
                return
            stored = connection.execute(select(store_meta.c.value).where(store_meta.c.name == PSEUDONYM_FINGERPRINT)).scalar()
    except Exception as error:
        raise StoreError(f"cannot open the store ({describe(str(engine.url))}): {type(error).__name__}: {first_line(error)}") from None
    if stored is not None and not hmac.compare_digest(stored, pseudonym_key_fingerprint(pseudonym_key)):
        raise KeyMismatchError(
            "BOT_PSEUDONYM_KEY is not the key this store was created with (fingerprints differ): "
            "every fan would look new and erasures would miss them; use the store's key"
        )


def record_pseudonym_key(engine: Engine, keys_engine: Engine, pseudonym_key: bytes, adopt: bool) -> bool:
    """Records the key's fingerprint in a store that has none: a new or empty store at once;
    a store from before fingerprints that already holds data only when `adopt` (`bot db
    upgrade`, the operator's deliberate step), since nothing stored can tell a right key from
    a wrong one and the first key to open it would otherwise be taken for the store's.
    Returns whether it recorded one; raises `KeyMismatchError` when it may not."""
    with engine.begin() as connection:
        stored = connection.execute(select(store_meta.c.value).where(store_meta.c.name == PSEUDONYM_FINGERPRINT)).scalar()
        if stored is not None:
            return False
        with keys_engine.connect() as keys_connection:
            holds_data = keys_connection.execute(select(data_keys.c.fan).limit(1)).first() is not None
        if holds_data and not adopt:
            raise KeyMismatchError(
                "this store predates pseudonym key fingerprints and already holds data: run `bot db upgrade` once "
                "with the store's own BOT_PSEUDONYM_KEY to record it (a wrong key would make every fan look new)"
            )
        connection.execute(insert(store_meta).values(name=PSEUDONYM_FINGERPRINT, value=pseudonym_key_fingerprint(pseudonym_key)))
        return True
