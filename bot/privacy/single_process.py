"""SQLite is the embedded, single-process store: a second `bot run` or `bot chat` on the same
file would hold its own in-process locks and caches, unseen by the first, so it is refused.

The serving process holds an exclusive `flock` on a lock file beside the database, holding its
pid for the refusal message; the kernel releases it when the process ends, however it ends,
so a crashed bot never leaves a stale lock. Operator commands (`bot forget`, `bot export`,
`bot audit`, `bot db`, ...) do not take it: they stay allowed beside a running bot.
Several processes need PostgreSQL (advisory locks, `bot.locks.FanLocks`).
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import Optional

from sqlalchemy.engine import make_url

from bot.privacy.store import StoreError


class StoreInUseError(StoreError):
    """Another process serves this SQLite store (one line, for the operator)."""


class ServingLock:
    """Held by the one process serving a SQLite store; `release` (or the process's end) frees it."""

    def __init__(self, fd: int, path: Path) -> None:
        self._fd: Optional[int] = fd
        self.path = path

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None


def lock_path(database: Path) -> Path:
    return database.with_name(database.name + ".lock")


def serve_sqlite_alone(url: str) -> Optional[ServingLock]:
    """Takes the serving lock of a SQLite store (None for other databases); raises
    `StoreInUseError` naming the other process's pid when it is held."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    path = lock_path(Path(parsed.database))
    if not path.parent.is_dir():
        return None  # no store here: opening it says so (or creates it, with its folder, and nothing else can be serving it)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
        os.close(fd)
        raise StoreInUseError(
            f"another bot process (pid {holder}) is serving the SQLite store {parsed.database}; SQLite is single-process: "
            "stop that one first, or use PostgreSQL ([store] url) to run several"
        ) from None
    except BaseException:
        os.close(fd)
        raise
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
    return ServingLock(fd, path)
