"""The fans' `/privacy` choices: whether their turns are kept (on unless they said off).

Read for every message, so each process caches them; the store keeps the cache true across
processes (a change announced through `bot.privacy.notify` drops the fan's entry). The
statements live here, the caching policy with the store's other caches.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Optional

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection

from bot.privacy.keys import DATA_KEY_CACHE
from bot.privacy.schema import preferences


class LoggingChoices:
    """Choices held in memory (store thread and event loop; single dict operations), at most
    `limit`: past it, everything held is dropped and read again."""

    def __init__(self, limit: int = DATA_KEY_CACHE) -> None:
        self._held: dict[str, bool] = {}
        self._limit = limit

    def get(self, fan: str) -> Optional[bool]:
        return self._held.get(fan)

    def keep(self, choices: Mapping[str, bool]) -> None:
        if len(self._held) + len(choices) > self._limit:
            self._held.clear()
        self._held.update(choices)

    def drop(self, fan: str) -> None:
        self._held.pop(fan, None)

    def compact(self) -> None:
        """After many drops: a dict keeps its grown table until rebuilt."""
        self._held = dict(self._held)

    def clear(self) -> None:
        self._held.clear()

    def fans(self) -> list[str]:
        return list(self._held)

    def __contains__(self, fan: object) -> bool:
        return fan in self._held


def read_choices(connection: Connection, fans: Iterable[str]) -> dict[str, bool]:
    """Each fan's choice, in one statement (a fan who never chose keeps the default: on)."""
    wanted = set(fans)
    query = select(preferences.c.fan, preferences.c.logging_enabled).where(preferences.c.fan.in_(wanted))
    stored = {fan: bool(enabled) for fan, enabled in connection.execute(query)}
    return {fan: stored.get(fan, True) for fan in wanted}


def logging_enabled(connection: Connection, fan: str) -> bool:
    value = connection.execute(select(preferences.c.logging_enabled).where(preferences.c.fan == fan)).scalar()
    return True if value is None else bool(value)


def set_logging(connection: Connection, fan: str, enabled: bool) -> None:
    changed = connection.execute(update(preferences).where(preferences.c.fan == fan).values(logging_enabled=enabled)).rowcount
    if not changed:
        connection.execute(insert(preferences).values(fan=fan, logging_enabled=enabled))
