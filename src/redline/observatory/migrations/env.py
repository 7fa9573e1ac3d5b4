"""Alembic environment: runs on the engine the service hands over (no ini file)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Engine

from redline.observatory.tables import Base

engine = context.config.attributes["engine"]
assert isinstance(engine, Engine)
with engine.begin() as connection:
    context.configure(connection=connection, target_metadata=Base.metadata)
    with context.begin_transaction():
        context.run_migrations()
