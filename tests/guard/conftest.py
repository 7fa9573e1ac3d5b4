"""Guard fixtures: a real redis-server on loopback, and a factory per store backend."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from redline.guard.store.base import GuardStore
from redline.guard.store.open import open_store

#: Seconds redis-server gets to start answering.
REDIS_START_S = 20.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def redis_answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@dataclass
class RedisServer:
    url: str
    proc: subprocess.Popen[bytes]


@contextmanager
def redis_server(folder: Path) -> Iterator[RedisServer]:
    """A redis-server on a free loopback port (no persistence), stopped on exit."""
    exe = shutil.which("redis-server")
    if exe is None:
        pytest.fail("redis-server is not installed: apt-get install -y redis-server")
    port = free_port()
    proc = subprocess.Popen(
        [exe, "--bind", "127.0.0.1", "--port", str(port), "--dir", str(folder),
         "--save", "", "--appendonly", "no", "--daemonize", "no", "--loglevel", "warning"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + REDIS_START_S
        while not redis_answers(port):
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"redis-server did not start on port {port}")
            time.sleep(0.05)
        yield RedisServer(f"redis://127.0.0.1:{port}/0", proc)
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=10)


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``redis://`` URL of a redis-server shared by this test session."""
    with redis_server(tmp_path_factory.mktemp("redis")) as server:
        yield server.url


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server for one test, which may stop it."""
    with redis_server(tmp_path) as server:
        yield server


StoreFactory = Callable[[], GuardStore]


@pytest.fixture(params=["memory", "sqlite", "redis"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A store URL per backend; each test gets fresh state (own file, own key prefix)."""
    if request.param == "memory":
        return "memory:"
    if request.param == "sqlite":
        return f"sqlite:{tmp_path / 'guard.db'}"
    base = request.getfixturevalue("redis_url")
    return f"{base}?prefix=test:{uuid.uuid4().hex}:"


@pytest.fixture
def make_store(store_url: str) -> StoreFactory:
    """Opens another instance (connection) on the same state; ``memory:`` has one instance."""
    shared = open_store(store_url) if store_url == "memory:" else None

    def make() -> GuardStore:
        return shared if shared is not None else open_store(store_url)

    return make
