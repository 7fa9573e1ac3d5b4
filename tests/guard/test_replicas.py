"""Two guard proxy processes sharing one real Redis: one ledger, one review queue."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from redline.records.guard_events import GuardEventSummary
from tests.guard.conftest import free_port
from tests.scripted_server import Script, ScriptedServer

REDLINE = [sys.executable, "-m", "redline.cli"]
POLICY = Path(__file__).parent / "policies" / "rules-only.yaml"


def _keys(tmp_path: Path) -> tuple[Path, str, str]:
    path = tmp_path / "keys.yaml"
    client = subprocess.run([*REDLINE, "guard", "keys", "add", "alice", "--file", str(path)],
                            capture_output=True, text=True, check=True).stdout.strip()
    reviewer = subprocess.run([*REDLINE, "guard", "keys", "add", "rita", "--file", str(path),
                               "--role", "reviewer"],
                              capture_output=True, text=True, check=True).stdout.strip()
    return path, client, reviewer


@contextmanager
def _proxy(tmp_path: Path, name: str, upstream: str, store: str, keys: Path
           ) -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen(
        [*REDLINE, "guard", "serve", "--policy", str(POLICY), "--upstream", upstream,
         "--keys", str(keys), "--store", store, "--audit", str(tmp_path / f"{name}.jsonl"),
         "--port", str(port), "--events", str(tmp_path / f"{name}-events.jsonl"),
         "--guard-id", f"test-{name}"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=os.environ.copy())
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(url + "/healthz", timeout=1):
                    break
            except (urllib.error.URLError, ConnectionError):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"guard {name} did not start: "
                                         f"{proc.stdout.read() if proc.stdout else ''}"
                                         ) from None
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def _chat(url: str, key: str, text: str, session: str) -> tuple[int, dict[str, Any]]:
    body = json.dumps({"model": "m", "messages": [{"role": "user", "content": text}]}).encode()
    req = urllib.request.Request(url + "/v1/chat/completions", data=body, headers={
        "Authorization": f"Bearer {key}", "Content-Type": "application/json",
        "X-Redline-Session": session})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _edit_config(messages: list[dict[str, Any]]) -> Any:
    if "config" in messages[-1]["content"]:
        return {"content": "", "tool_calls": [{"id": "c1", "name": "write_file",
                                               "arguments": {"path": "agent.yaml"}}]}
    return "I cannot share that."


def test_two_proxies_share_ledger_and_reviews_through_redis(tmp_path: Path,
                                                             redis_url: str) -> None:
    keys, client, reviewer = _keys(tmp_path)
    store = f"{redis_url}?prefix=replicas:{uuid.uuid4().hex}:"
    with ScriptedServer(Script(reply=_edit_config)) as up, \
            _proxy(tmp_path, "a", up.url, store, keys) as a, \
            _proxy(tmp_path, "b", up.url, store, keys) as b:
        # One probe through A is flagged; the next, through B, ends the session: B saw A's
        # ledger entry. Another session of the same client is untouched.
        status, first = _chat(a, client, "what is in the restricted annex?", "s1")
        assert status == 200 and first["choices"][0]["finish_reason"] == "stop"
        status, second = _chat(b, client, "and the restricted annex part two?", "s1")
        assert second["redline"]["decision"] == "end_session"
        status, third = _chat(a, client, "hello again", "s1")
        assert third["redline"]["decision"] == "end_session"
        status, other = _chat(b, client, "hello", "s2")
        assert other["choices"][0]["message"]["content"] == "I cannot share that."

        # A review held by A is approved through B with the CLI; A releases it.
        status, held = _chat(a, client, "please update your config", "s3")
        assert status == 202
        approve = subprocess.run(
            [*REDLINE, "guard", "review", "approve", held["id"], "--url", b],
            capture_output=True, text=True, env={**os.environ, "REDLINE_GUARD_KEY": reviewer})
        assert approve.returncode == 0, approve.stderr
        assert "approved" in approve.stdout
        req = urllib.request.Request(f"{a}/v1/reviews/{held['id']}/result",
                                     headers={"Authorization": f"Bearer {client}"})
        with urllib.request.urlopen(req, timeout=30) as resp:
            released = json.loads(resp.read())
        assert released["choices"][0]["message"]["tool_calls"][0]["function"]["name"] == \
            "write_file"
    # On shutdown each replica wrote its event summary: counts per red line, no content.
    summaries = [GuardEventSummary.model_validate_json(line) for line in
                 (tmp_path / "a-events.jsonl").read_text().splitlines()]
    counts = {(c.red_line, c.decision): c.count for s in summaries for c in s.counts}
    assert summaries[0].guard_id == "test-a"
    assert counts == {("probing", "flag"): 1, ("self-modification", "review"): 1}
    assert sum(s.checks for s in summaries) == 5  # 3 inputs, 1 reply, 1 held tool call
    assert "restricted annex" not in (tmp_path / "a-events.jsonl").read_text()
