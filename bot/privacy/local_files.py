"""Local data is its owner's only: folders the bot creates are 0700, its files 0600.

Python's `Path.mkdir(mode=..., parents=True)` gives the mode to the last folder only (the
parents get 0777 minus the umask, usually 0755), so each missing folder is made here. A
data file found with looser permissions (from an older version, or copied in) is
tightened. Folders that already existed are the operator's and are left as they are.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

from sqlalchemy.engine import make_url

logger = logging.getLogger(__name__)

FOLDER_MODE = 0o700
FILE_MODE = 0o600


def private_folder(folder: Path) -> None:
    """Creates `folder` and any missing parent, each 0700 whatever the umask."""
    missing: list[Path] = []
    current = folder
    while not current.exists():
        missing.append(current)
        current = current.parent
    for path in reversed(missing):
        try:
            path.mkdir(mode=FOLDER_MODE)
        except FileExistsError:  # made meanwhile by another process: it chose its mode
            continue
        os.chmod(path, FOLDER_MODE)  # the umask can only narrow mkdir's mode; say it outright


def private_file(path: Path) -> None:
    """Tightens an existing data file that others may read or write to 0600."""
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        return
    if mode & 0o077:
        os.chmod(path, FILE_MODE)
        logger.warning("%s was readable by other users (mode %04o); it is now %04o", path, mode, FILE_MODE)


def private_sqlite(url: str, create: bool = True) -> None:
    """Prepares a SQLite store's folders (0700; only when the store may be created) and
    tightens its existing files; other databases are not files of ours."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return
    database = Path(parsed.database)
    if create:
        private_folder(database.parent)
    for suffix in ("", "-wal", "-shm", "-journal"):
        private_file(database.with_name(database.name + suffix))


def private_spool(path: Path, create: bool = True) -> None:
    """The spool (`[store] spool_path`) is made lazily, when the database is down; its folders
    are made now (with the store) so that they are owner-only too."""
    if create:
        private_folder(path.parent)
    private_file(path)
