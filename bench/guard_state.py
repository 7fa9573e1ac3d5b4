"""Cost of the guard's state: one ledger update per backend, and audit appends.

For each store (memory, SQLite on disk, Redis on loopback) it runs ``--updates`` ledger
updates (``update_ledger`` with ``ledger.observe``, as the guard does per checked item) one
at a time, and prints wall latency p50/p99 and this process's CPU per update, each also
as a ratio to the memory store measured in the same run. Redis's own CPU (another process)
is not counted. ``sqlite-thread`` runs the same transaction through ``asyncio.to_thread``:
the alternative the SQLite store rejected, measured to show why. Then ``--in-flight``
updates run concurrently, spread over ``--keys`` keys (many sessions) and over
``--hot-keys`` keys (one principal's sessions contending), and updates/s are printed.
Then audit appends per second (no key; and Ed25519 checkpoints every 1000), including the
writer thread's flushes, as a ratio to memory-store ledger updates per second.

    python bench/guard_state.py [--updates 5000] [--in-flight 50] [--keys 1000]
                                [--hot-keys 5] [--redis-url redis://127.0.0.1:6379/0] [--json]

Without ``--redis-url`` a ``redis-server`` is started on a free loopback port (if installed).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import socket
import sqlite3
import subprocess
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from redline.guard import ledger
from redline.guard.audit import AuditLog
from redline.guard.store.base import GuardStore, LedgerEntry
from redline.guard.store.open import open_store_checked
from redline.policy.model import LedgerSettings

SETTINGS = LedgerSettings()
#: A medium score under a 0.7 threshold: every update changes the entry.
SCORE, THRESHOLD = 0.55, 0.7


def _update(entry: LedgerEntry | None) -> LedgerEntry:
    return ledger.observe(entry, SCORE, THRESHOLD, False, time.time(), SETTINGS)


class ThreadedSQLite:
    """The rejected design: each transaction handed to a worker thread."""

    def __init__(self, path: Path) -> None:
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False,
                                   timeout=10)
        self._db.execute("PRAGMA journal_mode = WAL")
        self._db.execute("PRAGMA synchronous = NORMAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS ledger (key TEXT PRIMARY KEY, "
                         "entry TEXT NOT NULL)")
        self._lock = threading.Lock()  # one connection, used by one thread at a time

    def _tx(self, key: str) -> LedgerEntry:
        with self._lock:
            return self._locked_tx(key)

    def _locked_tx(self, key: str) -> LedgerEntry:
        self._db.execute("BEGIN IMMEDIATE")
        row = self._db.execute("SELECT entry FROM ledger WHERE key = ?", (key,)).fetchone()
        entry = _update(LedgerEntry.model_validate_json(row[0]) if row else None)
        self._db.execute("INSERT OR REPLACE INTO ledger VALUES (?, ?)",
                         (key, entry.model_dump_json()))
        self._db.execute("COMMIT")
        return entry

    async def update_ledger(self, key: str, update: object) -> LedgerEntry:
        return await asyncio.to_thread(self._tx, key)

    async def close(self) -> None:
        self._db.close()


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _sequential(store: Any, n: int) -> dict[str, float]:
    for i in range(50):  # warm up: connections, caches, first rows
        await store.update_ledger(f"warm:{i}", _update)
    lat: list[float] = []
    cpu0 = time.process_time()
    for i in range(n):
        start = time.perf_counter()
        await store.update_ledger(f"session:{i % 100}", _update)
        lat.append(time.perf_counter() - start)
    cpu = time.process_time() - cpu0
    return {"p50_us": _pct(lat, 0.5) * 1e6, "p99_us": _pct(lat, 0.99) * 1e6,
            "cpu_us": cpu / n * 1e6}


async def _concurrent(store: Any, n: int, in_flight: int, keys: int) -> float:
    sem = asyncio.Semaphore(in_flight)

    async def one(i: int) -> None:
        async with sem:
            await store.update_ledger(f"hot:{i % keys}", _update)

    start = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(n)))
    return n / (time.perf_counter() - start)


def _audit_rate(folder: Path, n: int, key: Ed25519PrivateKey | None) -> float:
    path = folder / f"audit-{'signed' if key else 'plain'}.jsonl"
    data = {"tripwire": "bio.uplift", "detector": "semantic", "score": 0.4312,
            "threshold": 0.62, "tripped": False, "principal": "alice", "session": "s-1"}
    start = time.perf_counter()
    with AuditLog(path, signing_key=key) as log:
        for _ in range(n):
            log.append("check", data)
    return n / (time.perf_counter() - start)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def _redis_server(url: str | None) -> Iterator[str | None]:
    if url is not None or shutil.which("redis-server") is None:
        yield url
        return
    port = _free_port()
    with tempfile.TemporaryDirectory() as folder:
        proc = subprocess.Popen(
            ["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--dir", folder,
             "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    break
                except OSError:
                    time.sleep(0.05)
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            proc.terminate()
            proc.wait(timeout=10)


async def _measure(args: argparse.Namespace, folder: Path, redis_url: str | None
                   ) -> dict[str, Any]:
    makers: dict[str, Callable[[], Awaitable[Any]]] = {
        "memory": lambda: open_store_checked("memory:"),
        "sqlite": lambda: open_store_checked(f"sqlite:{folder / 'guard.db'}"),
    }

    async def threaded() -> ThreadedSQLite:
        return ThreadedSQLite(folder / "threaded.db")

    makers["sqlite-thread"] = threaded
    if redis_url is not None:
        makers["redis"] = lambda: open_store_checked(f"{redis_url}?prefix=bench:")
    results: dict[str, Any] = {"stores": {}}
    for name, make in makers.items():
        store: GuardStore = await make()
        row = await _sequential(store, args.updates)
        row["concurrent_per_s"] = await _concurrent(store, args.updates, args.in_flight,
                                                    args.keys)
        row["hot_per_s"] = await _concurrent(store, args.updates, args.in_flight,
                                             args.hot_keys)
        await store.close()
        results["stores"][name] = row
    results["audit_plain_per_s"] = _audit_rate(folder, args.updates * 4, None)
    results["audit_signed_per_s"] = _audit_rate(folder, args.updates * 4,
                                                Ed25519PrivateKey.generate())
    return results


def _print(results: dict[str, Any]) -> None:
    base = results["stores"]["memory"]
    print(f"{'store':<14}{'p50 µs':>9}{'p99 µs':>9}{'CPU µs':>9}{'p50 ×mem':>10}"
          f"{'CPU ×mem':>10}{'conc./s':>10}{'×mem':>7}{'hot/s':>9}{'×mem':>7}")
    for name, r in results["stores"].items():
        print(f"{name:<14}{r['p50_us']:>9.1f}{r['p99_us']:>9.1f}{r['cpu_us']:>9.1f}"
              f"{r['p50_us'] / base['p50_us']:>10.1f}{r['cpu_us'] / base['cpu_us']:>10.1f}"
              f"{r['concurrent_per_s']:>10.0f}"
              f"{r['concurrent_per_s'] / base['concurrent_per_s']:>7.2f}"
              f"{r['hot_per_s']:>9.0f}{r['hot_per_s'] / base['hot_per_s']:>7.2f}")
    mem_rate = 1e6 / base["cpu_us"]
    for kind in ("plain", "signed"):
        rate = results[f"audit_{kind}_per_s"]
        print(f"audit appends ({kind}): {rate:,.0f}/s = {rate / mem_rate:.2f}× "
              "memory-store ledger updates/s (by CPU)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--updates", type=int, default=5000)
    parser.add_argument("--in-flight", type=int, default=50)
    parser.add_argument("--keys", type=int, default=1000)
    parser.add_argument("--hot-keys", type=int, default=5)
    parser.add_argument("--redis-url", default=None)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=Path.cwd()) as tmp, \
            _redis_server(args.redis_url) as redis_url:
        results = asyncio.run(_measure(args, Path(tmp), redis_url))
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        _print(results)


if __name__ == "__main__":
    main()
