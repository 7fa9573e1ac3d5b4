"""Alembic migrations of the observatory schema."""
