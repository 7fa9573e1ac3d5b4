"""The GuardStore contract, on memory, SQLite and a real redis-server."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from redline.errors import InputError
from redline.guard.store.base import AgentRecord, GuardStore, LedgerEntry, ReviewItem
from redline.guard.store.memory import MemoryStore
from redline.guard.store.open import StoreUnreachableError, open_store, open_store_checked
from redline.guard.store.redis import RedisStore
from redline.guard.store.sqlite import SQLiteStore
from tests.guard.conftest import StoreFactory, free_port

#: Concurrent ledger updates per worker, and workers (threads, each with its own store).
UPDATES_PER_WORKER = 60
WORKERS = 4
IN_FLIGHT = 10


def _bump(entry: LedgerEntry | None) -> LedgerEntry:
    base = entry or LedgerEntry()
    return base.model_copy(update={"trips": base.trips + 1, "risk": base.risk + 0.5})


def _review(review_id: str, created_at: float = 100.0) -> ReviewItem:
    return ReviewItem(id=review_id, created_at=created_at, expires_at=created_at + 60,
                      principal="alice", session="s1", surface="output",
                      tripwires=["bio.uplift"], summary="held reply",
                      payload={"choices": [{"message": {"content": "x"}}]})


def _agent(agent_id: str, parent: str | None = None) -> AgentRecord:
    return AgentRecord(id=agent_id, parent=parent, principal="ops",
                       credential_sha256=f"{agent_id:0>64}"[-64:], created_at=1.0)


async def test_ledger_read_modify_write(make_store: StoreFactory) -> None:
    store = make_store()
    assert (await store.get_ledgers(["session:a"]))[0] is None
    seen: list[LedgerEntry | None] = []

    def update(entry: LedgerEntry | None) -> LedgerEntry:
        seen.append(entry)
        return _bump(entry)

    first = await store.update_ledger("session:a", update)
    second = await store.update_ledger("session:a", update)
    assert seen[0] is None and seen[-1] == first
    assert second.trips == 2 and second.risk == 1.0
    assert await store.get_ledgers(["session:a", "session:b", "session:a"]) == [
        second, None, second]
    assert await store.get_ledgers([]) == []
    await store.close()


def _worker(make_store: StoreFactory, errors: list[BaseException]) -> None:
    async def run() -> None:
        store = make_store()
        for _ in range(UPDATES_PER_WORKER // IN_FLIGHT):
            await asyncio.gather(*(store.update_ledger("hot", _bump)
                                   for _ in range(IN_FLIGHT)))
        if not isinstance(store, MemoryStore):
            await store.close()

    try:
        asyncio.run(run())
    except BaseException as exc:  # reported by the test thread
        errors.append(exc)


async def test_concurrent_updates_from_several_connections_lose_nothing(
    make_store: StoreFactory,
) -> None:
    errors: list[BaseException] = []
    threads = [threading.Thread(target=_worker, args=(make_store, errors))
               for _ in range(WORKERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    store = make_store()
    entry = (await store.get_ledgers(["hot"]))[0]
    assert entry is not None
    assert entry.trips == WORKERS * UPDATES_PER_WORKER
    assert entry.risk == pytest.approx(0.5 * WORKERS * UPDATES_PER_WORKER)
    await store.close()


async def test_rate_bucket_is_one_bucket_for_every_connection(
    make_store: StoreFactory,
) -> None:
    """Two connections (two workers or replicas) draw from one bucket: at 2 requests/s the
    burst is 2 in all, then one more every half second, whichever connection asks."""
    store, other = make_store(), make_store()
    assert await store.take_token("principal:bob", 2.0, 1000.0) is None
    assert await other.take_token("principal:bob", 2.0, 1000.0) is None
    assert await store.take_token("principal:bob", 2.0, 1000.0) == pytest.approx(0.5)
    assert await other.take_token("principal:bob", 2.0, 1000.1) == pytest.approx(0.4)
    assert await other.take_token("principal:bob", 2.0, 1000.5) is None
    assert await store.take_token("principal:bob", 2.0, 1000.5) == pytest.approx(0.5)
    # Another principal has its own bucket.
    assert await store.take_token("principal:carol", 2.0, 1000.5) is None
    for s in {id(store): store, id(other): other}.values():
        await s.close()


async def test_reviews_are_listed_and_decided_at_most_once(make_store: StoreFactory) -> None:
    store, other = make_store(), make_store()
    await store.add_review(_review("r2", created_at=200.0))
    await store.add_review(_review("r1", created_at=100.0))
    with pytest.raises(InputError, match="r1"):
        await other.add_review(_review("r1"))
    assert [i.id for i in await other.list_reviews()] == ["r1", "r2"]
    assert [i.id for i in await other.list_reviews("pending")] == ["r1", "r2"]
    fetched = await other.get_review("r1")
    assert fetched is not None and fetched.payload["choices"][0]["message"]["content"] == "x"
    assert await store.get_review("nope") is None

    outcomes = await asyncio.gather(
        *(s.decide_review("r1", "approved" if i % 2 else "denied", f"rev{i}", 300.0 + i)
          for i, s in enumerate([store, other] * 5))
    )
    winners = [o for o in outcomes if o is not None]
    assert len(winners) == 1
    stored = await store.get_review("r1")
    assert stored == winners[0] and stored.decided_by is not None
    assert stored.status in ("approved", "denied")
    assert await other.decide_review("r1", "approved", "late", 999.0) is None
    assert await store.decide_review("missing", "approved", "x", 1.0) is None
    assert [i.id for i in await store.list_reviews("pending")] == ["r2"]
    assert [i.id for i in await store.list_reviews(stored.status)] == ["r1"]
    await store.close()
    await other.close()


async def test_agents_children_and_revocation(make_store: StoreFactory) -> None:
    store, other = make_store(), make_store()
    await store.add_agent(_agent("root"))
    await store.add_agent(_agent("c1", parent="root"))
    await other.add_agent(_agent("c2", parent="root"))
    with pytest.raises(InputError, match="already exists"):
        await other.add_agent(_agent("c1", parent="root"))
    got = await other.get_agent("c1")
    assert got is not None and got.parent == "root"
    by_cred = await other.agent_by_credential(_agent("c2").credential_sha256)
    assert by_cred is not None and by_cred.id == "c2"
    assert await store.agent_by_credential("f" * 64) is None
    assert [c.id for c in await other.children("root")] == ["c1", "c2"]
    assert await store.children("c1") == []

    await store.mark_revoked(["c1", "unknown"], at=5.0, by="alice", reason="tripwire")
    await other.mark_revoked(["c1", "c2"], at=9.0, by="bob", reason="again")
    c1, c2, root = [await other.get_agent(a) for a in ("c1", "c2", "root")]
    assert c1 is not None and (c1.revoked_at, c1.revoked_by, c1.reason) == (5.0, "alice",
                                                                             "tripwire")
    assert c2 is not None and (c2.revoked_at, c2.revoked_by) == (9.0, "bob")
    assert root is not None and root.revoked_at is None
    await store.close()
    await other.close()


async def test_sqlite_survives_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "guard.db"
    store = SQLiteStore(path)
    await store.update_ledger("p:alice", _bump)
    await store.add_review(_review("r1"))
    await store.add_agent(_agent("a1"))
    await store.close()
    reopened = open_store(str(path))
    assert isinstance(reopened, SQLiteStore)
    entry = (await reopened.get_ledgers(["p:alice"]))[0]
    assert entry is not None and entry.trips == 1
    assert [i.id for i in await reopened.list_reviews()] == ["r1"]
    assert await reopened.get_agent("a1") is not None
    journal = reopened._db.execute("PRAGMA journal_mode").fetchone()[0]
    assert journal == "wal"
    await reopened.close()


_HAMMER = """
import asyncio, sys
from redline.guard.store.base import LedgerEntry
from redline.guard.store.sqlite import SQLiteStore

def bump(e):
    e = e or LedgerEntry()
    return e.model_copy(update={"trips": e.trips + 1})

async def main():
    store = SQLiteStore(sys.argv[1])
    print("ready", flush=True)
    sys.stdin.readline()
    for _ in range(int(sys.argv[2])):
        await store.update_ledger("hot", bump)
    await store.close()

asyncio.run(main())
"""


async def test_sqlite_two_processes_lose_no_update(tmp_path: Path) -> None:
    path, n = tmp_path / "guard.db", 1000
    store = SQLiteStore(path)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _HAMMER, str(path), str(n),
        stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert proc.stdout is not None and proc.stdin is not None
    assert (await proc.stdout.readline()).strip() == b"ready"
    proc.stdin.write(b"go\n")
    await proc.stdin.drain()
    for _ in range(n):
        await store.update_ledger("hot", _bump)
        await asyncio.sleep(0)
    assert await asyncio.wait_for(proc.wait(), timeout=120) == 0
    entry = (await store.get_ledgers(["hot"]))[0]
    assert entry is not None and entry.trips == 2 * n
    await store.close()


async def test_sqlite_waits_for_a_held_write_lock_without_blocking_the_loop(
    tmp_path: Path,
) -> None:
    path = tmp_path / "guard.db"
    store = SQLiteStore(path)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    update = asyncio.create_task(store.update_ledger("hot", _bump))
    for _ in range(20):  # the loop keeps running while the update waits for the lock
        await asyncio.sleep(0.005)
    assert not update.done()
    holder.execute("COMMIT")
    entry = await asyncio.wait_for(update, timeout=30)
    assert entry.trips == 1
    holder.close()
    await store.close()


async def test_redis_prefixes_keep_deployments_apart(redis_url: str) -> None:
    a = open_store(f"{redis_url}?prefix=deploy-a:")
    b = open_store(f"{redis_url}?prefix=deploy-b:")
    assert isinstance(a, RedisStore) and a.prefix == "deploy-a:"
    await a.update_ledger("s", _bump)
    assert (await b.get_ledgers(["s"]))[0] is None
    await a.close()
    await b.close()


def test_open_store_urls(tmp_path: Path) -> None:
    assert isinstance(open_store("memory:"), MemoryStore)
    for url in (f"sqlite:{tmp_path / 'a.db'}", f"sqlite://{tmp_path / 'b.db'}",
                str(tmp_path / "c.db")):
        store = open_store(url)
        assert isinstance(store, SQLiteStore)
    assert (tmp_path / "b.db").exists() and (tmp_path / "c.db").exists()
    assert isinstance(open_store("redis://127.0.0.1:6390/2"), RedisStore)
    with pytest.raises(InputError, match="'postgres'") as err:
        open_store("postgres://user:secret@db/guard")
    assert "secret" not in str(err.value) and err.value.exit_code == 2
    with pytest.raises(InputError, match="needs a path"):
        open_store("sqlite:")
    with pytest.raises(InputError, match="folder"):
        open_store(f"sqlite:{tmp_path}")
    with pytest.raises(InputError, match="empty"):
        open_store("redis://127.0.0.1:6390/0?prefix=")


async def test_unreachable_redis_is_a_clear_error() -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    with pytest.raises(StoreUnreachableError, match=r"127\.0\.0\.1") as err:
        await open_store_checked(url)
    assert err.value.exit_code == 3
    store: GuardStore = open_store(url)
    with pytest.raises(StoreUnreachableError, match="no answer from Redis"):
        await store.update_ledger("s", _bump)
    await store.close()
