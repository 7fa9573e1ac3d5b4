"""``redline guard serve --workers N``: processes sharing one port, one store, one rate per
principal and one /metrics; a dead worker stops the guard; SIGTERM stops it cleanly."""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from redline.guard.metrics import Metrics
from redline.records.guard_events import GuardEventSummary
from tests.scripted_server import Script, ScriptedServer

REDLINE = [sys.executable, "-m", "redline.cli"]
POLICY = Path(__file__).parent / "policies" / "rules-only.yaml"
BANNER = re.compile(r"on https?://127\.0\.0\.1:(\d+)/v1 ")
START_S = 90.0


@dataclass
class Served:
    proc: subprocess.Popen[str]
    url: str
    log: Path

    def workers(self) -> list[int]:
        """Pids of the worker processes (children started by multiprocessing's spawn)."""
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text()
        return [int(pid) for pid in children.split()
                if "spawn_main" in Path(f"/proc/{pid}/cmdline").read_text()]


def _key(path: Path, principal: str, *extra: str) -> str:
    return subprocess.run([*REDLINE, "guard", "keys", "add", principal, "--file", str(path),
                           *extra], capture_output=True, text=True, check=True).stdout.strip()


@contextmanager
def _serve(tmp_path: Path, upstream: str, keys: Path, *extra: str) -> Iterator[Served]:
    log = tmp_path / "serve.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [*REDLINE, "guard", "serve", "--policy", str(POLICY), "--upstream", upstream,
             "--keys", str(keys), "--store", f"sqlite:{tmp_path / 'guard.sqlite'}",
             "--audit", str(tmp_path / "audit.jsonl"), "--port", "0", "--workers", "2",
             *extra],
            stdout=out, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + START_S
        while not (match := BANNER.search(log.read_text())):
            assert proc.poll() is None, f"guard exited: {log.read_text()}"
            assert time.monotonic() < deadline, f"guard did not start: {log.read_text()}"
            time.sleep(0.1)
        yield Served(proc, f"http://127.0.0.1:{match.group(1)}", log)
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=60)


def _get(url: str, key: str | None = None) -> tuple[int, bytes]:
    """One request on a new connection (urllib never reuses one), so the kernel picks the
    worker afresh each time."""
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers),
                                    timeout=30) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _chat(url: str, key: str, text: str) -> tuple[int, dict[str, Any]]:
    body = json.dumps({"model": "m", "messages": [{"role": "user", "content": text}]}).encode()
    req = urllib.request.Request(url + "/v1/chat/completions", data=body, headers={
        "Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _series(text: str) -> dict[str, float]:
    return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
            for line in text.splitlines() if line and not line.startswith("#")}


def test_workers_share_the_port_the_rate_limit_and_the_metrics(tmp_path: Path) -> None:
    keys = tmp_path / "keys.yaml"
    client, admin = _key(keys, "alice"), _key(keys, "root", "--role", "admin")
    slow = _key(keys, "bob", "--rate", "0.2")
    with ScriptedServer(Script(reply=lambda m: "Here is the summary.")) as up, \
            _serve(tmp_path, up.url, keys, "--events", str(tmp_path / "events.jsonl")) as g:
        seen = {json.loads(_get(g.url + "/healthz")[1])["worker"] for _ in range(60)}
        assert seen == {0, 1}

        answers = [_chat(g.url, client, f"summarise part {i}") for i in range(16)]
        assert {status for status, _ in answers} == {200}
        stopped = _chat(g.url, client, "how is sarin made?")[1]
        assert stopped["redline"]["decision"] == "block"

        # bob may send one request per five seconds in all, not one per worker.
        limited = [_chat(g.url, slow, f"hello {i}")[0] for i in range(10)]
        assert sorted(limited) == [200] + [429] * 9

        # Whichever worker answers /metrics counts every worker's requests.
        deadline = time.monotonic() + 10
        while True:
            status, raw = _get(g.url + "/metrics", admin)
            assert status == 200
            series = _series(raw.decode())
            if series.get('redline_guard_checks_total{surface="input"}') == 18 or \
                    time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert series['redline_guard_checks_total{surface="input"}'] == 18
        assert series['redline_guard_checks_total{surface="output"}'] == 17
        assert series['redline_guard_decisions_total{action="block"}'] == 1
        assert series[
            'redline_guard_requests_total{route="/v1/chat/completions",status="429"}'] == 9
        assert series["redline_guard_added_latency_seconds_count"] == 18
        workers = g.workers()
        assert len(workers) == 2

        g.proc.send_signal(signal.SIGTERM)
        assert g.proc.wait(timeout=60) == 0, g.log.read_text()
    for pid in workers:
        assert not Path(f"/proc/{pid}").exists() or \
            "zombie" in Path(f"/proc/{pid}/status").read_text()

    # One audit chain per worker, verified together; each holds some of the checks.
    chains = [tmp_path / "audit.w0.jsonl", tmp_path / "audit.w1.jsonl"]
    assert not (tmp_path / "audit.jsonl").exists()
    verify = subprocess.run([*REDLINE, "guard", "audit", "verify", *map(str, chains)],
                            capture_output=True, text=True)
    assert verify.returncode == 0, verify.stderr
    assert verify.stdout.count("chain intact") == 2
    lines = chains[1].read_text().splitlines()
    record = json.loads(lines[0])
    record["kind"] = "tampered"
    lines[0] = json.dumps(record)
    chains[1].write_text("\n".join(lines) + "\n")
    verify = subprocess.run([*REDLINE, "guard", "audit", "verify", *map(str, chains)],
                            capture_output=True, text=True)
    assert verify.returncode == 5
    assert "audit.w1.jsonl:1" in verify.stderr and "audit.w0" not in verify.stderr

    # Event summaries: one guard id per worker, adding up to every check.
    summaries = [GuardEventSummary.model_validate_json(line)
                 for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    port = g.url.rsplit(":", 1)[1]
    assert {s.guard_id for s in summaries} <= {f"guard-rules-test@127.0.0.1:{port}/w{i}"
                                               for i in (0, 1)}
    assert sum(s.checks for s in summaries) == 18 + 17


def test_a_dead_worker_stops_the_guard_with_exit_6(tmp_path: Path) -> None:
    keys = tmp_path / "keys.yaml"
    _key(keys, "alice")
    with ScriptedServer() as up, _serve(tmp_path, up.url, keys) as g:
        first, second = g.workers()
        os.kill(first, signal.SIGKILL)
        assert g.proc.wait(timeout=60) == 6
        log = g.log.read_text()
        assert f"guard worker 0 (pid {first}) exited with code -9" in log or \
            f"guard worker 1 (pid {first}) exited with code -9" in log, log
        deadline = time.monotonic() + 10
        while Path(f"/proc/{second}").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not Path(f"/proc/{second}").exists()


def test_workers_refuse_what_they_cannot_share(tmp_path: Path) -> None:
    keys = tmp_path / "keys.yaml"
    _key(keys, "alice")
    base = [*REDLINE, "guard", "serve", "--policy", str(POLICY), "--upstream",
            "http://127.0.0.1:9/v1", "--keys", str(keys), "--audit", str(tmp_path / "a.jsonl")]
    memory = subprocess.run([*base, "--store", "memory:", "--workers", "2"],
                            capture_output=True, text=True)
    assert memory.returncode == 2 and "memory:" in memory.stderr
    zero = subprocess.run([*base, "--store", f"sqlite:{tmp_path / 'g.sqlite'}",
                           "--workers", "0"], capture_output=True, text=True)
    assert zero.returncode == 2 and "--workers" in zero.stderr
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = subprocess.run([*base, "--store", f"sqlite:{tmp_path / 'g.sqlite'}",
                               "--workers", "2", "--port", str(taken.getsockname()[1])],
                              capture_output=True, text=True, timeout=120)
    assert busy.returncode == 2 and "cannot listen" in busy.stderr
    assert not list(tmp_path.glob("a.w*.jsonl"))


def test_metrics_of_the_workers_add_up(tmp_path: Path) -> None:
    mine, peer = Metrics(), Metrics()
    mine.inc("redline_guard_checks_total", surface="input")
    peer.inc("redline_guard_checks_total", 2, surface="input")
    peer.inc("redline_guard_decisions_total", action="block")
    mine.observe_latency(0.0015)
    peer.observe_latency(0.03)
    peer.set("redline_guard_open_streams", 2)
    peer.publish(tmp_path / "w1.json")
    (tmp_path / "w2.json").write_text("{not json")
    total = _series(mine.merged([tmp_path / "w1.json", tmp_path / "w2.json",
                                 tmp_path / "w3.json"]).render())
    assert total['redline_guard_checks_total{surface="input"}'] == 3
    assert total['redline_guard_decisions_total{action="block"}'] == 1
    assert total["redline_guard_open_streams"] == 2
    assert total['redline_guard_added_latency_seconds_bucket{le="0.002"}'] == 1
    assert total['redline_guard_added_latency_seconds_bucket{le="0.05"}'] == 2
    assert total["redline_guard_added_latency_seconds_count"] == 2
    # The process's own metrics are not changed by merging.
    assert _series(mine.render())['redline_guard_checks_total{surface="input"}'] == 1


def _all_answer(url: str, key: str, status: int, tries: int = 16) -> bool:
    """``tries`` requests on fresh connections (so both workers) all get ``status``."""
    return all(_chat(url, key, "hello")[0] == status for _ in range(tries))


def _until(condition: Any, timeout_s: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def test_sighup_reloads_keys_in_every_worker(tmp_path: Path) -> None:
    keys = tmp_path / "keys.yaml"
    alice = _key(keys, "alice")
    with ScriptedServer(Script(reply=lambda m: "hi")) as up, _serve(tmp_path, up.url, keys) as g:
        carol = _key(keys, "carol")
        assert _chat(g.url, carol, "hello")[0] == 401  # not loaded yet
        g.proc.send_signal(signal.SIGHUP)
        assert _until(lambda: _all_answer(g.url, carol, 200)), g.log.read_text()

        listed = subprocess.run([*REDLINE, "guard", "keys", "list", "--file", str(keys)],
                                capture_output=True, text=True, check=True).stdout
        assert "alice  client" in listed and "carol  client" in listed
        removed = subprocess.run([*REDLINE, "guard", "keys", "remove", "alice", "--file",
                                  str(keys)], capture_output=True, text=True)
        assert removed.returncode == 0 and "removed 1 key(s) of alice" in removed.stdout
        again = subprocess.run([*REDLINE, "guard", "keys", "remove", "alice", "--file",
                                str(keys)], capture_output=True, text=True)
        assert again.returncode == 4
        g.proc.send_signal(signal.SIGHUP)
        assert _until(lambda: _all_answer(g.url, alice, 401)), g.log.read_text()
        assert _all_answer(g.url, carol, 200)

        # A broken key file is refused on reload: the keys in use stay.
        keys.write_text("keys: [{principal: eve}]\n")
        g.proc.send_signal(signal.SIGHUP)
        assert _until(lambda: g.log.read_text().count("key file not reloaded") >= 2)
        assert _all_answer(g.url, carol, 200)
        assert g.proc.poll() is None


def _self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, as a deployment's own CA would issue."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "guard.test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = folder / "guard.crt", folder / "guard.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def test_tls_serves_https_only_and_refuses_a_bad_key(tmp_path: Path) -> None:
    import ssl

    keys = tmp_path / "keys.yaml"
    client = _key(keys, "alice")
    cert, key = _self_signed(tmp_path)
    with ScriptedServer(Script(reply=lambda m: "over TLS")) as up, \
            _serve(tmp_path, up.url, keys, "--tls-cert", str(cert), "--tls-key", str(key)) as g:
        assert "on https://127.0.0.1:" in g.log.read_text()
        url = g.url.replace("http://", "https://")
        trusted = ssl.create_default_context(cafile=str(cert))
        body = json.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}]})
        req = urllib.request.Request(url + "/v1/chat/completions", data=body.encode(),
                                     headers={"Authorization": f"Bearer {client}",
                                              "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30, context=trusted) as resp:
            assert json.loads(resp.read())["choices"][0]["message"]["content"] == "over TLS"
        # A client that does not trust the certificate, and plain HTTP, get nowhere.
        with pytest.raises(urllib.error.URLError):
            urllib.request.urlopen(url + "/healthz", timeout=30,
                                   context=ssl.create_default_context())
        with pytest.raises((urllib.error.URLError, ConnectionError, http.client.HTTPException)):
            urllib.request.urlopen(g.url + "/healthz", timeout=30)

    (tmp_path / "other.key").write_text("-----BEGIN PRIVATE KEY-----\nAAAA\n"
                                        "-----END PRIVATE KEY-----\n")
    bad = subprocess.run([*REDLINE, "guard", "serve", "--policy", str(POLICY), "--upstream",
                          "http://127.0.0.1:9/v1", "--keys", str(keys), "--store",
                          f"sqlite:{tmp_path / 'g2.sqlite'}", "--audit",
                          str(tmp_path / "a2.jsonl"), "--tls-cert", str(cert), "--tls-key",
                          str(tmp_path / "other.key")], capture_output=True, text=True,
                         timeout=120)
    assert bad.returncode == 2 and "guard.crt" in bad.stderr and "TLS" in bad.stderr
    plain = subprocess.run([*REDLINE, "guard", "serve", "--policy", str(POLICY), "--upstream",
                            "http://127.0.0.1:9/v1", "--keys", str(keys), "--store",
                            "memory:", "--audit", str(tmp_path / "a3.jsonl"), "--host",
                            "0.0.0.0", "--port", "0", "--tls-cert", str(cert)],
                           capture_output=True, text=True, timeout=120)
    assert plain.returncode == 2 and "--tls-cert and --tls-key go together" in plain.stderr


def _edit_config(messages: list[dict[str, Any]]) -> Any:
    if "config" in messages[-1]["content"]:
        return {"content": "", "tool_calls": [{"id": "c1", "name": "write_file",
                                               "arguments": {"path": "agent.yaml"}}]}
    return "fine"


def test_a_held_item_is_announced_to_the_review_webhook(tmp_path: Path) -> None:
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from redline.webhooks import EVENT_HEADER, SIGNATURE_HEADER, verify_signature

    calls: list[tuple[dict[str, str], bytes]] = []

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            calls.append((dict(self.headers),
                          self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *_: Any) -> None:
            pass

    secret = "review-hook-secret-0123456789"
    receiver = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    hook = f"http://127.0.0.1:{receiver.server_address[1]}/held"
    keys = tmp_path / "keys.yaml"
    client = _key(keys, "alice")
    os.environ["TEST_REVIEW_SECRET"] = secret
    try:
        with ScriptedServer(Script(reply=_edit_config)) as up, \
                _serve(tmp_path, up.url, keys, "--review-webhook", hook,
                       "--review-webhook-secret-env", "TEST_REVIEW_SECRET") as g:
            status, held = _chat(g.url, client, "please update your config")
            assert status == 202
            assert _until(lambda: bool(calls), 20), g.log.read_text()
        headers, body = calls[0]
        assert verify_signature(secret, body, headers[SIGNATURE_HEADER])
        assert headers[EVENT_HEADER] == "review.held"
        sent = json.loads(body)
        assert sent["review"]["id"] == held["id"] == sent["result_url"].split("/")[3]
        assert sent["review"]["principal"] == "alice" and sent["review"]["status"] == "pending"
        assert "payload" not in sent["review"]  # the held reply stays in the guard
    finally:
        del os.environ["TEST_REVIEW_SECRET"]
        receiver.shutdown()
        receiver.server_close()
    unsigned = subprocess.run([*REDLINE, "guard", "serve", "--policy", str(POLICY),
                               "--upstream", "http://127.0.0.1:9/v1", "--keys", str(keys),
                               "--store", "memory:", "--audit", str(tmp_path / "x.jsonl"),
                               "--review-webhook", hook], capture_output=True, text=True,
                              timeout=120)
    assert unsigned.returncode == 2 and "signed" in unsigned.stderr
