"""Export and erasure cover the same data: every table that can hold a fan's pseudonym
(a `fan` column, or rows tied to a ticket) belongs to a part of `everything()`."""

from __future__ import annotations

from bot.privacy.fan_data import everything
from bot.privacy.schema import ERASURE_MACHINERY, data_keys, desk_posts, keys, transcripts


def test_every_table_naming_a_fan_is_exported_and_erased_by_one_definition() -> None:
    covered = {table.name for part in everything() for table in part.tables}
    naming_a_fan = {
        table.name
        for metadata in (transcripts, keys)
        for table in metadata.tables.values()
        if "fan" in table.c or "ticket" in table.c
    }
    # The wrapped key is shredded first on its own; the erasure job names a fan only until done.
    exempt = {data_keys.name, *(table.name for table in ERASURE_MACHINERY)}
    assert naming_a_fan - exempt <= covered, f"not covered by bot.privacy.fan_data: {sorted(naming_a_fan - exempt - covered)}"
    assert desk_posts.name in covered


def test_part_names_are_distinct_export_keys() -> None:
    names = [part.name for part in everything()]
    assert len(names) == len(set(names))
    assert not {"pseudonym", "encryption_key"} & set(names)
