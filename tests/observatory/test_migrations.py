"""The shipped Alembic migrations create exactly the tables the code declares, on both
databases, and migrating twice is a no-op."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from redline.observatory.db import Database, migrate
from redline.observatory.tables import Base


def test_migrations_match_the_models(db_url: str) -> None:
    database = Database(db_url)
    migrate(database.engine)
    migrate(database.engine)
    with database.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        tables = set(inspect(conn).get_table_names())
    assert diff == []
    assert set(Base.metadata.tables) | {"alembic_version"} == tables
    database.engine.dispose()
