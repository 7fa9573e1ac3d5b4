"""The push client and the CLI: retries through a proxy that drops answers store nothing
twice; ``redline observatory`` sets up organisations, pushes, and serves."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
from click.testing import CliRunner

from redline.cli.main import cli
from redline.observatory.client import ObservatoryClient, PushError
from tests.observatory.conftest import Observatory, Signed
from tests.observatory.guardfeed import summaries_from_decisions
from tests.observatory.test_ingest_auth import _register

FLAG = ("rl4-cyberattacks", "CAT.CYBER", "input", "flag")
START = datetime(2026, 6, 1, tzinfo=UTC)


class DroppingProxy:
    """Forwards requests to the observatory, but for the first POST to each path it hangs
    up after the observatory answered, so the client never sees that its push succeeded."""

    def __init__(self, upstream: str) -> None:
        outer = self
        self.forwarded = 0
        self.dropped: list[str] = []

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                headers = {k: v for k, v in self.headers.items()
                           if k.lower() in ("authorization", "content-type")}
                answer = requests.post(upstream + self.path, data=body, headers=headers,
                                       timeout=30)
                outer.forwarded += 1
                if self.path not in outer.dropped:
                    outer.dropped.append(self.path)
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                self.send_response(answer.status_code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer.content)))
                self.end_headers()
                self.wfile.write(answer.content)

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> DroppingProxy:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *_: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_retries_after_lost_answers_store_nothing_twice(obs: Observatory,
                                                        signed: Signed) -> None:
    lab = obs.member("lab-a", "reviewer")
    _register(obs, lab, signed)
    summaries = summaries_from_decisions("guard-p", START, timedelta(minutes=1),
                                         [[FLAG, None, None]] * 7)

    async def run(url: str) -> tuple[bool, int, int]:
        async with ObservatoryClient(url, lab.token, attempts=4, backoff_s=0.01) as client:
            stored = await client.push_attestation(signed.envelope)
            result = await client.push_summaries(summaries)
            return stored, result.sent, result.already_there

    with DroppingProxy(obs.url) as proxy:
        stored, sent, already = asyncio.run(run(proxy.url))
    assert proxy.dropped == ["/api/attestations", "/api/events"] and proxy.forwarded == 4
    assert stored is False  # its first copy got in; the retry was told so, not stored again
    assert (sent, already) == (0, 7)  # likewise for the batch
    assert len(obs.get("/api/attestations", lab).json()) == 1
    assert len(obs.get("/api/events", lab).json()) == 7


def test_unreachable_observatory_fails_after_the_retries() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]

    async def run() -> None:
        async with ObservatoryClient(f"http://127.0.0.1:{port}", "rlo_x", attempts=3,
                                     backoff_s=0.01) as client:
            await client.push_summaries(summaries_from_decisions(
                "g", START, timedelta(minutes=1), [[None]]))

    with pytest.raises(PushError, match="after 3 attempts"):
        asyncio.run(run())


def test_cli_sets_up_and_pushes(obs: Observatory, signed: Signed, tmp_path: Path) -> None:
    runner = CliRunner()
    url = str(obs.db.engine.url.render_as_string(hide_password=False))
    r = runner.invoke(cli, ["observatory", "create-org", "--db", url, "lab-cli", "Lab CLI"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(cli, ["observatory", "add-member", "--db", url, "lab-cli", "Cleo",
                            "--role", "reviewer"])
    assert r.exit_code == 0, r.output
    token = json.loads(r.output)["key"]
    requests.post(obs.url + "/api/orgs/lab-cli/signing-keys", timeout=30,
                  headers={"Authorization": f"Bearer {token}"},
                  json={"public_pem": signed.public_pem}).raise_for_status()
    events = tmp_path / "events.jsonl"
    events.write_text("".join(s.model_dump_json(by_alias=True) + "\n" for s in
                              summaries_from_decisions("guard-cli", START, timedelta(minutes=1),
                                                       [[FLAG, None]] * 3)))
    args = ["observatory", "push", "--url", obs.url, "--key", token,
            "--attestation", str(signed.attestation), "--events", str(events)]
    first = runner.invoke(cli, args)
    assert first.exit_code == 0, first.output
    assert "stored" in first.output and "summaries: 3 stored, 0 already there" in first.output
    again = runner.invoke(cli, args)
    assert again.exit_code == 0, again.output
    assert "already there" in again.output and "0 stored, 3 already there" in again.output

    r = runner.invoke(cli, ["observatory", "revoke-key", "--db", url, token[:10]])
    assert r.output.strip() == "revoked 1 key(s)"
    denied = runner.invoke(cli, args)
    assert denied.exit_code != 0 and isinstance(denied.exception, PushError)

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"guard_id": "g"}\n')
    r = runner.invoke(cli, ["observatory", "push", "--url", obs.url, "--key", "x",
                            "--events", str(bad)])
    assert r.exit_code != 0 and "bad.jsonl:1" in str(r.exception)


def test_serve_command_runs_the_service(db_url: str) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "redline.cli", "observatory", "serve", "--db",
                             db_url, "--port", str(port)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, env=dict(os.environ))
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                spec = requests.get(f"http://127.0.0.1:{port}/openapi.json", timeout=5).json()
                break
            except requests.ConnectionError:
                assert proc.poll() is None and time.monotonic() < deadline
                time.sleep(0.2)
        assert spec["info"]["title"] == "redline observatory"
        assert "/api/events" in spec["paths"]
        page = requests.get(f"http://127.0.0.1:{port}/", timeout=5)
        assert page.status_code == 200 and "public view" in page.text
    finally:
        proc.terminate()
        proc.wait(30)
