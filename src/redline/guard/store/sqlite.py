"""SQLite store, the default: one file, survives restarts, shared by processes on one host.

Why the calls run on the event loop rather than in a thread: every transaction is a few
statements on one row (tens of microseconds in WAL mode with ``synchronous=NORMAL``, see
``bench/guard_state.py``), cheaper than handing work to a thread. What could stall the loop
is waiting for another process's write lock, so the connection never waits inside SQLite
(``timeout=0``): a busy database raises at once and the coroutine retries after an
``asyncio.sleep`` with backoff, up to ``BUSY_DEADLINE_S``. Read-modify-write runs under
``BEGIN IMMEDIATE``, so two writers serialise instead of losing an update.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from redline.errors import InputError
from redline.guard import rate_limit
from redline.guard.store.base import (
    AgentRecord,
    LedgerEntry,
    ReviewItem,
    ReviewStatus,
    StoreUnavailableError,
)

#: First and largest pause between attempts while another process holds the write lock.
BUSY_BACKOFF_S = (0.0005, 0.02)
#: Give up (``StoreBusyError``) after the database stayed locked this long.
BUSY_DEADLINE_S = 10.0
SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS ledger (
    key TEXT PRIMARY KEY, risk REAL NOT NULL, near_misses REAL NOT NULL,
    trips INTEGER NOT NULL, updated_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS reviews (
    id TEXT PRIMARY KEY, status TEXT NOT NULL, created_at REAL NOT NULL, item TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS reviews_status ON reviews (status, created_at);
CREATE TABLE IF NOT EXISTS agents (
    id TEXT PRIMARY KEY, parent TEXT, credential_sha256 TEXT NOT NULL UNIQUE,
    record TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS agents_parent ON agents (parent);
CREATE TABLE IF NOT EXISTS buckets (
    key TEXT PRIMARY KEY, tokens REAL NOT NULL, at REAL NOT NULL);
"""

T = TypeVar("T")


class StoreBusyError(StoreUnavailableError):
    """The database stayed locked by another process for longer than ``BUSY_DEADLINE_S``."""


def _busy(exc: sqlite3.OperationalError) -> bool:
    return (exc.sqlite_errorcode & 0xFF) in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


def _rollback(db: sqlite3.Connection) -> None:
    if db.in_transaction:
        db.execute("ROLLBACK")


class SQLiteStore:
    """Guard state in one SQLite file (WAL mode)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if self.path.is_dir():
            raise InputError("guard store path is a folder", file=self.path)
        if not self.path.parent.is_dir():
            raise InputError(f"no folder {self.path.parent} for the guard store", file=self.path)
        try:
            self._db = sqlite3.connect(
                self.path, timeout=0, isolation_level=None, check_same_thread=False
            )
            self._setup()
        except sqlite3.DatabaseError as exc:
            raise InputError(f"cannot open the guard store: {exc}", file=self.path) from None

    def _setup(self) -> None:
        # Setup may meet another process creating the same file: wait (once, at start-up).
        self._db.execute(f"PRAGMA busy_timeout = {int(BUSY_DEADLINE_S * 1000)}")
        self._db.execute("PRAGMA journal_mode = WAL")
        self._db.execute("PRAGMA synchronous = NORMAL")
        self._db.executescript(_SCHEMA)
        self._db.execute(
            "INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
        )
        (version,) = self._db.execute(
            "SELECT value FROM meta WHERE name = 'schema_version'"
        ).fetchone()
        if version != str(SCHEMA_VERSION):
            raise InputError(f"guard store schema {version}, expected {SCHEMA_VERSION}",
                             file=self.path)
        self._db.execute("PRAGMA busy_timeout = 0")

    async def _run(self, fn: Callable[[sqlite3.Connection], T], write: bool) -> T:
        """Run ``fn`` in one transaction, retrying without blocking while the file is locked."""
        delay, deadline = BUSY_BACKOFF_S[0], time.monotonic() + BUSY_DEADLINE_S
        while True:
            try:
                self._db.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            except sqlite3.OperationalError as exc:
                if not _busy(exc):
                    raise
            else:
                try:
                    result = fn(self._db)
                    self._db.execute("COMMIT")
                    return result
                except sqlite3.OperationalError as exc:
                    _rollback(self._db)
                    if not _busy(exc):
                        raise
                except BaseException:
                    _rollback(self._db)
                    raise
            if time.monotonic() > deadline:
                raise StoreBusyError(
                    f"guard store {self.path} stayed locked for over {BUSY_DEADLINE_S:.0f} s"
                )
            await asyncio.sleep(delay)
            delay = min(delay * 2, BUSY_BACKOFF_S[1])

    async def get_ledgers(self, keys: Sequence[str]) -> list[LedgerEntry | None]:
        if not keys:
            return []
        return await self._run(lambda db: _read_ledgers(db, keys), write=False)

    async def update_ledger(
        self, key: str, update: Callable[[LedgerEntry | None], LedgerEntry]
    ) -> LedgerEntry:
        def tx(db: sqlite3.Connection) -> LedgerEntry:
            entry = update(_read_ledgers(db, [key])[0])
            db.execute(
                "INSERT INTO ledger VALUES (?, ?, ?, ?, ?) ON CONFLICT (key) DO UPDATE SET"
                " risk = excluded.risk, near_misses = excluded.near_misses,"
                " trips = excluded.trips, updated_at = excluded.updated_at",
                (key, entry.risk, entry.near_misses, entry.trips, entry.updated_at),
            )
            return entry

        return await self._run(tx, write=True)

    async def take_token(self, key: str, rate_per_s: float, now: float) -> float | None:
        def tx(db: sqlite3.Connection) -> float | None:
            row = db.execute("SELECT tokens, at FROM buckets WHERE key = ?", (key,)).fetchone()
            bucket, wait = rate_limit.take(
                rate_limit.Bucket(*row) if row is not None else None, rate_per_s, now
            )
            db.execute("INSERT OR REPLACE INTO buckets VALUES (?, ?, ?)",
                       (key, bucket.tokens, bucket.at))
            return wait

        return await self._run(tx, write=True)

    async def add_review(self, item: ReviewItem) -> None:
        def tx(db: sqlite3.Connection) -> None:
            try:
                db.execute("INSERT INTO reviews VALUES (?, ?, ?, ?)",
                           (item.id, item.status, item.created_at, item.model_dump_json()))
            except sqlite3.IntegrityError:
                raise InputError(f"review {item.id!r} already exists") from None

        await self._run(tx, write=True)

    async def get_review(self, review_id: str) -> ReviewItem | None:
        return await self._run(lambda db: _read_review(db, review_id), write=False)

    async def list_reviews(self, status: ReviewStatus | None = None) -> list[ReviewItem]:
        def tx(db: sqlite3.Connection) -> list[ReviewItem]:
            if status is None:
                rows = db.execute("SELECT item FROM reviews ORDER BY created_at")
            else:
                rows = db.execute(
                    "SELECT item FROM reviews WHERE status = ? ORDER BY created_at", (status,)
                )
            return [ReviewItem.model_validate_json(row[0]) for row in rows]

        return await self._run(tx, write=False)

    async def decide_review(
        self, review_id: str, status: ReviewStatus, by: str, at: float, note: str = ""
    ) -> ReviewItem | None:
        def tx(db: sqlite3.Connection) -> ReviewItem | None:
            item = _read_review(db, review_id)
            if item is None or item.status != "pending":
                return None
            decided = item.model_copy(
                update={"status": status, "decided_by": by, "decided_at": at, "note": note}
            )
            db.execute("UPDATE reviews SET status = ?, item = ? WHERE id = ?",
                       (status, decided.model_dump_json(), review_id))
            return decided

        return await self._run(tx, write=True)

    async def add_agent(self, record: AgentRecord) -> None:
        def tx(db: sqlite3.Connection) -> None:
            try:
                db.execute("INSERT INTO agents VALUES (?, ?, ?, ?)",
                           (record.id, record.parent, record.credential_sha256,
                            record.model_dump_json()))
            except sqlite3.IntegrityError:
                raise InputError(
                    f"agent {record.id!r} or its credential already exists"
                ) from None

        await self._run(tx, write=True)

    async def get_agent(self, agent_id: str) -> AgentRecord | None:
        return await self._run(
            lambda db: _one_agent(db, "SELECT record FROM agents WHERE id = ?", agent_id),
            write=False,
        )

    async def agent_by_credential(self, credential_sha256: str) -> AgentRecord | None:
        return await self._run(
            lambda db: _one_agent(
                db, "SELECT record FROM agents WHERE credential_sha256 = ?", credential_sha256
            ),
            write=False,
        )

    async def children(self, agent_id: str) -> list[AgentRecord]:
        def tx(db: sqlite3.Connection) -> list[AgentRecord]:
            rows = db.execute("SELECT record FROM agents WHERE parent = ? ORDER BY rowid",
                              (agent_id,))
            return [AgentRecord.model_validate_json(row[0]) for row in rows]

        return await self._run(tx, write=False)

    async def mark_revoked(self, agent_ids: list[str], at: float, by: str, reason: str) -> None:
        def tx(db: sqlite3.Connection) -> None:
            for agent_id in agent_ids:
                record = _one_agent(db, "SELECT record FROM agents WHERE id = ?", agent_id)
                if record is None or record.revoked_at is not None:
                    continue
                revoked = record.model_copy(
                    update={"revoked_at": at, "revoked_by": by, "reason": reason}
                )
                db.execute("UPDATE agents SET record = ? WHERE id = ?",
                           (revoked.model_dump_json(), agent_id))

        await self._run(tx, write=True)

    async def close(self) -> None:
        self._db.close()


def _read_ledgers(db: sqlite3.Connection, keys: Sequence[str]) -> list[LedgerEntry | None]:
    marks = ",".join("?" * len(keys))
    found = {
        row[0]: LedgerEntry(risk=row[1], near_misses=row[2], trips=row[3], updated_at=row[4])
        for row in db.execute(
            f"SELECT key, risk, near_misses, trips, updated_at FROM ledger WHERE key IN ({marks})",
            tuple(keys),
        )
    }
    return [found.get(key) for key in keys]


def _read_review(db: sqlite3.Connection, review_id: str) -> ReviewItem | None:
    row = db.execute("SELECT item FROM reviews WHERE id = ?", (review_id,)).fetchone()
    return ReviewItem.model_validate_json(row[0]) if row is not None else None


def _one_agent(db: sqlite3.Connection, query: str, value: str) -> AgentRecord | None:
    row = db.execute(query, (value,)).fetchone()
    return AgentRecord.model_validate_json(row[0]) if row is not None else None
