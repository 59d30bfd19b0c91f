"""The store's keys: the master keys must open a stored data key, and the pseudonym key must be
the one the store was created with (its fingerprint is recorded), before anything is written;
and the statements on the data keys (made, read with their version, shredded, rewrapped).
The store caches the keys it uses (`bot.privacy.store`).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, insert, inspect, select, update
from sqlalchemy.engine import Connection, Engine

from bot.privacy import crypto
from bot.privacy.crypto import MasterKeys
from bot.privacy.database import StoreError, describe, first_line
from bot.privacy.schema import data_keys, dialect_insert, store_meta

#: Data keys (and per-fan choices, recent turns) held in memory at most, per store: the most
#: recently active fans' (a burst's group commits need a few dozen at once; a fan beyond them
#: is read from the store). Each costs about 1.3 KB; 10,000 kept a burst's 13 MB, scattered
#: over the allocator's arenas, for the conversation idle limit (bench/soak.py, issue 11).
DATA_KEY_CACHE = 1_000


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


# Data keys: one per fan, wrapped by the master keys; its row's `created_at` is its version. ----


def load_keys(
    connection: Connection, master: MasterKeys, fans: Sequence[str], create: bool
) -> tuple[dict[str, tuple[bytes, datetime]], set[str]]:
    """The unwrapped data keys and versions of these fans, read in the caller's transaction in
    one statement; with `create`, a new key for each fan without one (another process may make
    a fan's key at the same moment: the first one stays). Returns the keys, and the fans whose
    key was made here."""
    wanted = list(dict.fromkeys(fans))
    query = select(data_keys.c.fan, data_keys.c.wrapped, data_keys.c.created_at).where(data_keys.c.fan.in_(wanted))
    stored = {row.fan: (row.wrapped, row.created_at) for row in connection.execute(query)}
    held: dict[str, tuple[bytes, datetime]] = {}
    created: set[str] = set()
    new = [fan for fan in wanted if fan not in stored] if create else []
    if new:
        version = datetime.utcnow()
        made = {fan: crypto.new_data_key() for fan in new}
        statement = dialect_insert(connection)(data_keys).on_conflict_do_nothing(index_elements=[data_keys.c.fan])
        rows = [{"fan": fan, "wrapped": master.wrap(key), "created_at": version} for fan, key in made.items()]
        created = set(connection.execute(statement.returning(data_keys.c.fan), rows).scalars())
        held.update((fan, (made[fan], version)) for fan in created)
        if len(created) < len(new):  # made by another process first: theirs
            stored.update(
                (row.fan, (row.wrapped, row.created_at))
                for row in connection.execute(query.where(data_keys.c.fan.in_([fan for fan in new if fan not in created])))
            )
    held.update((fan, (master.unwrap(wrapped), version)) for fan, (wrapped, version) in stored.items())
    return held, created


def key_versions(connection: Connection, fans: Sequence[str], for_share: bool = False) -> dict[str, datetime]:
    """The version of each of these fans' key rows that exists; `for_share` (PostgreSQL) locks
    them until the caller's transaction ends, so an erasure waits for it."""
    query = select(data_keys.c.fan, data_keys.c.created_at).where(data_keys.c.fan.in_(list(fans)))
    if for_share:
        query = query.with_for_update(read=True)
    return {row.fan: row.created_at for row in connection.execute(query)}


def delete_key(connection: Connection, fan: str) -> int:
    """Crypto-shredding: the fan's data key goes; returns how many rows (0 or 1)."""
    return int(connection.execute(delete(data_keys).where(data_keys.c.fan == fan)).rowcount)


def rewrap_keys(connection: Connection, master: MasterKeys) -> int:
    """Rewraps every data key under the first master key; returns how many."""
    rotated = 0
    for fan, wrapped in connection.execute(select(data_keys.c.fan, data_keys.c.wrapped)).all():
        connection.execute(update(data_keys).where(data_keys.c.fan == fan).values(wrapped=master.rewrap(wrapped)))
        rotated += 1
    return rotated
