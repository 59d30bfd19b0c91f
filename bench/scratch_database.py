"""A throwaway PostgreSQL database for one benchmark run, on the server `BOT_BENCH_POSTGRES_URL`
names (`tests/with_postgres.sh` starts one): created empty, dropped afterwards however the run ends."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url


@contextlib.contextmanager
def scratch_database(server: str) -> Iterator[str]:
    """Yields the new database's URL (password kept, so child processes can connect)."""
    name = f"bench_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT", future=True)
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(server).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
