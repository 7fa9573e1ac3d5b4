"""Engine, sessions and schema migrations (Alembic, shipped in this package)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from redline.errors import InputError

MIGRATIONS = Path(__file__).parent / "migrations"
SUPPORTED_SCHEMES = ("sqlite", "postgresql")


def make_engine(url: str) -> Engine:
    """An engine for SQLite or PostgreSQL (psycopg 3); other databases are refused."""
    scheme = url.split(":", 1)[0].split("+", 1)[0]
    if scheme not in SUPPORTED_SCHEMES:
        raise InputError(f"database URL scheme {scheme!r} is not supported; use sqlite:/// "
                         "or postgresql://", field="database_url")
    if scheme == "postgresql" and "+" not in url.split(":", 1)[0]:
        url = "postgresql+psycopg" + url[len("postgresql"):]
    if scheme == "sqlite":
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True)


def _sqlite_pragmas(dbapi_connection: object, _record: object) -> None:
    cursor = dbapi_connection.cursor()  # type: ignore[attr-defined]
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.close()


def alembic_config(engine: Engine) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["engine"] = engine
    return cfg


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest revision (a no-op when it is there already)."""
    command.upgrade(alembic_config(engine), "head")


class Database:
    def __init__(self, url: str) -> None:
        self.engine = make_engine(url)
        self._factory = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session that commits on success and rolls back on any error."""
        with self._factory() as session, session.begin():
            yield session
