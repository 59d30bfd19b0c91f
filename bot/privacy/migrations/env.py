"""Alembic environment: run programmatically by `bot.privacy.migrate`, never by hand.

Each database role ("transcripts", "keys") has its own version table, so both can share
one database or live apart.
"""

from alembic import context

connection = context.config.attributes["connection"]
role = context.config.attributes["role"]
context.configure(connection=connection, version_table=f"alembic_version_{role}", target_metadata=None)
with context.begin_transaction():
    context.run_migrations(role=role)
