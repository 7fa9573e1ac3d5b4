"""Observatory throughput and latency on SQLite and PostgreSQL.

For each database: guard event-summary ingest (batches POSTed through the real HTTP server;
summaries per second and per-batch latency p50/p99) and alert latency (a summary with a
crossing decision goes in → the signed webhook call arrives at a loopback receiver; p50/p99).
Baselines from the same run and server: an authenticated ``GET /api/me`` round trip for the
ingest latency, and a direct signed POST to the same receiver for the alert latency; ratios
are printed against them.

    python bench/observatory.py [--batches 30] [--batch-size 20] [--alerts 30]
        [--backends sqlite,postgresql] [--json]
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import pwd
import shutil
import socket
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import requests
import uvicorn

from redline.observatory import Settings, create_app
from redline.observatory.bootstrap import add_member, create_org
from redline.webhooks import sign

SECRET = "bench-secret-0123456789"
PG_BIN_GLOB = "/usr/lib/postgresql/*/bin"


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


@contextmanager
def postgres() -> Iterator[str]:
    folder = Path(tempfile.mkdtemp(prefix="bench-pg-"))
    wrap: list[str] = []
    if os.geteuid() == 0:
        entry = pwd.getpwnam("postgres")
        os.chown(folder, entry.pw_uid, entry.pw_gid)
        wrap = ["runuser", "-u", "postgres", "--"]
    folders = sorted(glob.glob(PG_BIN_GLOB), reverse=True)
    tool = {n: shutil.which(n) or str(Path(folders[0], n)) for n in ("initdb", "pg_ctl")}
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    subprocess.run([*wrap, tool["initdb"], "-D", str(folder / "data"), "-A", "trust", "-U",
                    "postgres", "--no-sync"], check=True, capture_output=True)
    subprocess.run([*wrap, tool["pg_ctl"], "-D", str(folder / "data"), "-l",
                    str(folder / "log"), "-w", "-o",
                    f"-p {port} -k {folder} -c listen_addresses=127.0.0.1", "start"],
                   check=True, capture_output=True)
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*wrap, tool["pg_ctl"], "-D", str(folder / "data"), "-m", "immediate",
                        "stop"], capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def served(url: str) -> Iterator[tuple[str, str]]:
    app = create_app(Settings(database_url=url))
    with app.state.db.session() as s:
        create_org(s, "bench", "Bench")
        _, token = add_member(s, "bench", "bench", "reviewer")
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}", token
    finally:
        server.should_exit = True
        thread.join(15)


class Receiver:
    def __init__(self) -> None:
        self.arrivals: dict[str, float] = {}
        self.got = threading.Condition()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with outer.got:
                    outer.arrivals[body["alert"]["details"]["guard_id"]] = time.perf_counter()
                    outer.got.notify_all()
                self.send_response(204)
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait(self, key: str, timeout: float = 30) -> float:
        with self.got:
            self.got.wait_for(lambda: key in self.arrivals, timeout)
        return self.arrivals[key]


def summary(guard: str, i: int, decision: str) -> dict[str, Any]:
    start = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=i)
    return {"guard_id": guard, "policy_id": "idais", "policy_digest": "0" * 64,
            "window_start": start.isoformat(),
            "window_end": (start + timedelta(minutes=1)).isoformat(), "checks": 100,
            "counts": [{"red_line": "rl4", "category": "CAT.CYBER", "surface": "input",
                        "decision": decision, "count": 2}]}


def timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


class Client:
    """A new connection per request: a kept-alive ``requests`` connection adds ~40 ms of
    delayed-ACK stall per request on Linux (http.client without TCP_NODELAY), which would
    swamp what is measured here."""

    def __init__(self, token: str) -> None:
        self.headers = {"Authorization": f"Bearer {token}"}

    def get(self, url: str) -> requests.Response:
        return requests.get(url, headers=self.headers, timeout=60)

    def post(self, url: str, json: Any) -> requests.Response:
        return requests.post(url, json=json, headers=self.headers, timeout=60)


def measure(url: str, token: str, args: argparse.Namespace) -> dict[str, float]:
    http = Client(token)
    base = [timed(lambda: http.get(url + "/api/me").raise_for_status())
            for _ in range(args.batches)]
    batch_times = []
    for b in range(args.batches):
        batch = [summary(f"ingest-{b}", i, "flag") for i in range(args.batch_size)]
        batch_times.append(timed(lambda batch=batch: http.post(  # type: ignore[misc]
            url + "/api/events", json={"summaries": batch}).raise_for_status()))
    receiver = Receiver()
    http.post(url + "/api/webhooks", json={"url": receiver.url, "secret": SECRET}
              ).raise_for_status()
    direct, alert = [], []
    for k in range(args.alerts):
        body = json.dumps({"alert": {"details": {"guard_id": f"direct-{k}"}}}).encode()
        t0 = time.perf_counter()
        requests.post(receiver.url, data=body, timeout=30, headers={
            "X-Redline-Signature": sign(SECRET, body, int(time.time()))})
        direct.append(receiver.wait(f"direct-{k}") - t0)
        t0 = time.perf_counter()
        http.post(url + "/api/events", json={"summaries": [summary(f"alert-{k}", 0, "block")]}
                  ).raise_for_status()
        alert.append(receiver.wait(f"alert-{k}") - t0)
    receiver.server.shutdown()
    total = sum(batch_times)
    return {
        "summaries_per_s": args.batches * args.batch_size / total,
        "batch_p50_ms": 1000 * pct(batch_times, 0.5), "batch_p99_ms": 1000 * pct(batch_times, 0.99),
        "baseline_get_p50_ms": 1000 * pct(base, 0.5),
        "batch_vs_get_p50": pct(batch_times, 0.5) / pct(base, 0.5),
        "alert_p50_ms": 1000 * pct(alert, 0.5), "alert_p99_ms": 1000 * pct(alert, 0.99),
        "direct_webhook_p50_ms": 1000 * pct(direct, 0.5),
        "alert_vs_direct_p50": pct(alert, 0.5) / pct(direct, 0.5),
        "mean_alert_ms": 1000 * statistics.mean(alert),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batches", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=20)
    parser.add_argument("--alerts", type=int, default=30)
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results = {}
    for backend in args.backends.split(","):
        with tempfile.TemporaryDirectory() as tmp:
            if backend == "sqlite":
                with served(f"sqlite:///{tmp}/bench.db") as (url, token):
                    results[backend] = measure(url, token, args)
            else:
                with postgres() as pg, served(pg) as (url, token):
                    results[backend] = measure(url, token, args)
    if args.json:
        print(json.dumps(results, indent=2))
        return
    for backend, r in results.items():
        print(f"{backend}: ingest {r['summaries_per_s']:.0f} summaries/s "
              f"(batches of {args.batch_size}: p50 {r['batch_p50_ms']:.1f} ms, "
              f"p99 {r['batch_p99_ms']:.1f} ms; {r['batch_vs_get_p50']:.1f}x an authenticated "
              f"GET at {r['baseline_get_p50_ms']:.1f} ms)")
        print(f"{backend}: alert latency event in -> webhook out p50 {r['alert_p50_ms']:.1f} ms, "
              f"p99 {r['alert_p99_ms']:.1f} ms ({r['alert_vs_direct_p50']:.1f}x a direct signed "
              f"POST to the receiver at {r['direct_webhook_p50_ms']:.1f} ms)")


if __name__ == "__main__":
    main()
