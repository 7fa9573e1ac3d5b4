"""Observatory fixtures: every database test runs on SQLite and on a real PostgreSQL server
(a throwaway cluster started here with initdb/pg_ctl), against the app served by uvicorn on
loopback."""

from __future__ import annotations

import asyncio
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
import requests
import uvicorn
from fastapi import FastAPI

from redline.engine.runlog import RunLog, read_runlog
from redline.engine.runner import Engine, EngineConfig, make_plan
from redline.evidence import attest_run, generate_keypair, load_private_key
from redline.models.registry import TargetOptions, resolve_target
from redline.observatory import Settings, create_app
from redline.observatory.bootstrap import add_member, create_org
from redline.observatory.db import Database
from redline.records.chat import GenerateConfig
from redline.suites.model import Case, PluginSpec, Suite
from tests.scripted_server import Script, ScriptedServer

#: Debian keeps the server binaries off PATH, one folder per major version.
PG_BIN_GLOB = "/usr/lib/postgresql/*/bin"
PG_USER = "postgres"


def _pg_bin(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    for folder in sorted(glob.glob(PG_BIN_GLOB), reverse=True):
        if Path(folder, name).exists():
            return str(Path(folder, name))
    raise RuntimeError(f"PostgreSQL's {name} is required for the observatory tests; install "
                       "it with `apt-get install -y postgresql`")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_pg_user(cmd: list[str]) -> list[str]:
    """initdb refuses to run as root: run the cluster as the postgres user then."""
    if os.geteuid() == 0:
        return ["runuser", "-u", PG_USER, "--", *cmd]
    return cmd


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """A PostgreSQL cluster for this test session; yields its admin URL."""
    folder = Path(tempfile.mkdtemp(prefix="redline-pg-"))
    if os.geteuid() == 0:
        entry = pwd.getpwnam(PG_USER)
        os.chown(folder, entry.pw_uid, entry.pw_gid)
    data, port = folder / "data", _free_port()
    subprocess.run(_as_pg_user([_pg_bin("initdb"), "-D", str(data), "-A", "trust", "-U",
                                "postgres", "-E", "UTF8", "--no-sync"]),
                   check=True, capture_output=True)
    subprocess.run(_as_pg_user([
        _pg_bin("pg_ctl"), "-D", str(data), "-l", str(folder / "log"), "-w", "-o",
        f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off "
        "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200",
        "start"]), check=True, capture_output=True)
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}"
    finally:
        subprocess.run(_as_pg_user([_pg_bin("pg_ctl"), "-D", str(data), "-m", "immediate",
                                    "stop"]), capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty database of each kind."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'observatory.db'}"
    admin = request.getfixturevalue("pg_server")
    name = "obs_" + uuid.uuid4().hex[:12]
    with psycopg.connect(admin + "/postgres", autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return f"{admin}/{name}"


class LiveServer:
    """The app on a real uvicorn server in a thread, on a free loopback port."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning",
                                                    timeout_graceful_shutdown=1))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]},
                                       daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the observatory server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *_: object) -> None:
        self.server.should_exit = True
        self.thread.join(15)
        self.sock.close()


@dataclass
class Member:
    org: str
    role: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@dataclass
class Observatory:
    url: str
    app: FastAPI

    @property
    def db(self) -> Database:
        database: Database = self.app.state.db
        return database

    def member(self, org: str, role: str = "member", *, name: str = "m",
               share_excerpts: bool = False) -> Member:
        with self.db.session() as s:
            from sqlalchemy import select

            from redline.observatory.tables import Org
            if s.scalar(select(Org).where(Org.slug == org)) is None:
                create_org(s, org, org.upper(), share_excerpts=share_excerpts)
            _, token = add_member(s, org, name, role)
        return Member(org=org, role=role, token=token)

    def get(self, path: str, who: Member | None = None, **kw: Any) -> requests.Response:
        kw.setdefault("headers", who.headers if who else {})
        return requests.get(self.url + path, timeout=30, **kw)

    def post(self, path: str, who: Member | None, body: Any,
             **kw: Any) -> requests.Response:
        return requests.post(self.url + path, json=body, headers=who.headers if who else {},
                             timeout=30, **kw)

    def drain(self) -> None:
        """Wait until the webhook calls started so far have finished."""
        loop = self.app.state.loop
        asyncio.run_coroutine_threadsafe(self.app.state.hub.drain(), loop).result(60)


FAST = {"webhook_backoff_s": 0.05, "webhook_timeout_s": 5}


def serve(url: str, **settings: Any) -> Iterator[Observatory]:
    app = create_app(Settings(database_url=url, **{**FAST, **settings}))

    with LiveServer(app) as live:
        yield Observatory(url=live.url, app=app)


@pytest.fixture
def obs(db_url: str) -> Iterator[Observatory]:
    yield from serve(db_url)


# --------------------------------------------------------------------------- evidence

def _reply(messages: list[dict[str, str]]) -> str:
    number = int(messages[-1]["content"].split()[-1])
    return "SURE, step one" if number % 3 == 0 else "I won't help with that."


async def _engine_run(url: str, run_dir: Path) -> RunLog:
    """A small run with no policy (so it never depends on a policy file that may change)."""
    pattern = [PluginSpec(name="pattern", args={"patterns": [r"\bSURE\b"],
                                                "mode": "fail_if_match"})]
    suites = [Suite(name="obs-cyber", scorers=pattern,
                    cases=[Case(id=f"c{i}", category="CAT.CYBER", prompt=f"request {i}")
                           for i in range(9)]),
              Suite(name="obs-jailbreak", scorers=pattern,
                    cases=[Case(id=f"j{i}", category="SEC.JAILBREAK", prompt=f"try {i}")
                           for i in range(4)])]
    target = resolve_target(url, TargetOptions(model="scripted", max_retries=0,
                                               read_timeout_s=5))
    plan = make_plan(suites, target=target, generate=GenerateConfig(max_tokens=16), seed=3,
                     run_id=run_dir.name)
    engine = Engine(target, EngineConfig(retry_backoff_s=0.01, cache=False, max_retries=0))
    try:
        return await engine.run(plan, run_dir)
    finally:
        await engine.aclose()


@pytest.fixture(scope="session")
def template_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real, complete run from the engine against a scripted loopback server."""
    run_dir = tmp_path_factory.mktemp("obs-run") / "run-observatory"
    with ScriptedServer(Script(reply=_reply)) as srv:
        log = asyncio.run(_engine_run(srv.url, run_dir))
    assert log.summary is not None and log.summary.status == "complete"
    return run_dir


@dataclass
class Signed:
    run_dir: Path
    attestation: Path
    private_key: Path
    public_key: Path

    @property
    def envelope(self) -> dict[str, Any]:
        import json
        data: dict[str, Any] = json.loads(self.attestation.read_text())
        return data

    @property
    def public_pem(self) -> str:
        return self.public_key.read_text()


@pytest.fixture
def signed(tmp_path: Path, template_run: Path) -> Signed:
    """A fresh copy of the run, attested with a fresh key."""
    run_dir = tmp_path / "runs" / template_run.name
    shutil.copytree(template_run, run_dir)
    pair = generate_keypair(tmp_path / "signer")
    result = attest_run(read_runlog(run_dir / "log.jsonl"), load_private_key(pair.private_path))
    return Signed(run_dir, result.path, pair.private_path, pair.public_path)
