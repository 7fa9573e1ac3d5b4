"""End to end: a real guard's event summaries, pushed with the push client, trip the spike
rule; the webhook receiver on loopback gets a correctly signed call and the SSE feed
carries it."""

from __future__ import annotations

import json
import queue
import socket
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from redline.webhooks import DELIVERY_HEADER, SIGNATURE_HEADER, verify_signature
from tests.observatory.conftest import Member, Observatory, serve
from tests.observatory.guardfeed import push, summaries_from_decisions, summaries_from_guard

SECRET = "webhook-secret-0123456789"
FLAG = ("rl4-cyberattacks", "CAT.CYBER", "input", "flag")
START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@dataclass
class Receiver:
    """A loopback webhook receiver; answers 500 to the first ``fail_first`` calls."""

    fail_first: int = 0
    calls: list[tuple[dict[str, str], bytes, int]] = field(default_factory=list)

    def __enter__(self) -> Receiver:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                status = 500 if len(outer.calls) < outer.fail_first else 204
                outer.calls.append((dict(self.headers), body, status))
                self.send_response(status)
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *_: object) -> None:
        self.server.shutdown()
        self.server.server_close()


class SseReader:
    """Reads the live feed over a plain socket in a thread; alerts land in a queue. (A raw
    socket, so closing it ends the read at once, as a browser closing a tab would.)"""

    def __init__(self, obs: Observatory, who: Member, last_event_id: str | None = None
                 ) -> None:
        self.alerts: queue.Queue[dict[str, Any]] = queue.Queue()
        self.connected = threading.Event()
        host, port = obs.url.removeprefix("http://").split(":")
        self.sock = socket.create_connection((host, int(port)), timeout=60)
        resume = f"Last-Event-ID: {last_event_id}\r\n" if last_event_id is not None else ""
        self.sock.sendall(f"GET /api/alerts/stream HTTP/1.1\r\nHost: {host}\r\n"
                          f"Authorization: Bearer {who.token}\r\n{resume}"
                          "Accept: text/event-stream\r\n\r\n".encode())
        self.head: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        assert self.connected.wait(30), self.head

    def _read(self) -> None:
        event = ""
        try:
            for raw in self.sock.makefile("rb"):
                line = raw.decode("utf-8").rstrip("\r\n")
                if len(self.head) < 10:
                    self.head.append(line)
                if line.startswith(": connected"):
                    self.connected.set()
                elif line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: ") and event == "alert":
                    self.alerts.put(json.loads(line[6:]))
        except OSError:
            pass

    def close(self) -> None:
        self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()


def _baseline_then_spike() -> list[tuple[int, int]]:
    """(flagged, benign) messages per window: a 2% tripwire rate, then 30%."""
    return [(2, 98)] * 4 + [(30, 70)]


def test_spike_reaches_the_webhook_signed_and_the_live_feed(obs: Observatory) -> None:
    lab = obs.member("lab-a", "reviewer")
    other = obs.member("lab-b")
    with Receiver() as hook:
        assert obs.post("/api/webhooks", lab, {"url": hook.url, "secret": SECRET}
                        ).status_code == 201
        listed = obs.get("/api/webhooks", lab).json()
        assert listed and "secret" not in json.dumps(listed) and SECRET not in json.dumps(listed)
        feed, other_feed = SseReader(obs, lab), SseReader(obs, other)
        try:
            summaries = summaries_from_guard("guard-1", START, timedelta(minutes=5),
                                             _baseline_then_spike())
            assert [s.counts[0].count for s in summaries] == [2, 2, 2, 2, 30]
            assert {(c.red_line, c.category, c.surface, c.decision)
                    for s in summaries for c in s.counts} == {FLAG}
            quiet = push(obs.url, lab.token, summaries[:4])
            assert quiet.sent == 4 and quiet.alerts == 0
            result = push(obs.url, lab.token, summaries[4:])
            assert result.sent == 1 and result.alerts == 1
            alert = feed.alerts.get(timeout=30)
            obs.drain()
        finally:
            feed.close()
            other_feed.close()
    assert alert["rule"] == "tripwire_spike" and alert["red_line"] == "rl4-cyberattacks"
    assert alert["details"]["rate"] == 0.3 and abs(alert["details"]["baseline"] - 0.02) < 1e-9
    assert other_feed.alerts.empty()  # lab-b may not see lab-a's alert
    assert len(hook.calls) == 1
    headers, body, _ = hook.calls[0]
    assert verify_signature(SECRET, body, headers[SIGNATURE_HEADER])
    assert not verify_signature("wrong-secret-0123456789", body, headers[SIGNATURE_HEADER])
    assert not verify_signature(SECRET, body + b" ", headers[SIGNATURE_HEADER])
    sent = json.loads(body)
    assert sent["event"] == "alert" and sent["alert"]["id"] == alert["id"]
    assert [a["id"] for a in obs.get("/api/alerts", lab).json()] == [alert["id"]]
    assert obs.get("/api/alerts", other).json() == []
    # the same windows pushed again raise nothing new
    assert push(obs.url, lab.token, summaries).alerts == 0


def test_webhook_retried_with_backoff_until_accepted(obs: Observatory) -> None:
    lab = obs.member("lab-a", "reviewer")
    block = ("rl4-cyberattacks", "CAT.CYBER", "output", "block")
    with Receiver(fail_first=2) as hook:
        obs.post("/api/webhooks", lab, {"url": hook.url, "secret": SECRET})
        result = push(obs.url, lab.token, summaries_from_decisions(
            "guard-2", START, timedelta(minutes=5), [[block, None, None]]))
        assert result.alerts == 1
        obs.drain()
    assert [status for _, _, status in hook.calls] == [500, 500, 204]
    hook_id = obs.get("/api/webhooks", lab).json()[0]["id"]
    (kept,) = obs.get(f"/api/webhooks/{hook_id}/deliveries", lab).json()
    assert (kept["status"], kept["attempts"], kept["last_error"]) == ("delivered", 3, "")
    bodies = {body for _, body, _ in hook.calls}
    assert len(bodies) == 1  # the same alert each time
    assert all(verify_signature(SECRET, body, h[SIGNATURE_HEADER]) for h, body, _ in hook.calls)
    assert json.loads(hook.calls[0][1])["alert"]["rule"] == "red_line_crossed"


def test_a_missed_alert_is_kept_and_sent_again_on_request(obs: Observatory) -> None:
    """Every retry fails: the delivery is listed as failed with why; once the receiver is
    back, a reviewer redelivers it (same id and alert, fresh signature). Another
    organisation can neither see nor resend it."""
    lab, other = obs.member("lab-a", "reviewer"), obs.member("lab-b", "reviewer")
    block = ("rl4-cyberattacks", "CAT.CYBER", "output", "block")
    with Receiver(fail_first=5) as hook:
        hook_id = obs.post("/api/webhooks", lab, {"url": hook.url, "secret": SECRET}
                           ).json()["id"]
        assert push(obs.url, lab.token, summaries_from_decisions(
            "guard-3", START, timedelta(minutes=5), [[block, None, None]])).alerts == 1
        obs.drain()
        assert len(hook.calls) == 5  # the default policy: five attempts
        failed = obs.get(f"/api/webhooks/{hook_id}/deliveries?status=failed", lab).json()
        assert [(d["attempts"], d["last_error"]) for d in failed] == [(5, "HTTP 500")]
        assert obs.get(f"/api/webhooks/{hook_id}/deliveries?status=delivered", lab
                       ).json() == []
        delivery = failed[0]["id"]
        assert obs.get(f"/api/webhooks/{hook_id}/deliveries", other).status_code == 404
        assert obs.post(f"/api/webhooks/deliveries/{delivery}/redeliver", other, None
                        ).status_code == 404

        again = obs.post(f"/api/webhooks/deliveries/{delivery}/redeliver", lab, None)
        assert again.status_code == 202 and again.json()["status"] == "pending"
        obs.drain()
        assert [status for _, _, status in hook.calls] == [500] * 5 + [204]
        # Only a failed delivery is sent again.
        assert obs.post(f"/api/webhooks/deliveries/{delivery}/redeliver", lab, None
                        ).status_code == 409
    (kept,) = obs.get(f"/api/webhooks/{hook_id}/deliveries", lab).json()
    assert (kept["status"], kept["attempts"], kept["last_error"]) == ("delivered", 6, "")
    first, last = hook.calls[0], hook.calls[-1]
    assert first[1] == last[1]  # the same alert
    assert first[0][DELIVERY_HEADER] == last[0][DELIVERY_HEADER] == delivery
    assert verify_signature(SECRET, last[1], last[0][SIGNATURE_HEADER])


def test_a_delivery_cut_off_by_a_restart_can_be_sent_again(db_url: str) -> None:
    """The observatory stops while a receiver is slow to answer: the delivery stays pending.
    After a restart, once longer than a whole retry policy has passed, it counts as
    abandoned and a reviewer can send it again."""
    answer = threading.Event()

    class Slow(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            arrived.append(self.headers[DELIVERY_HEADER])
            answer.wait(30)
            self.send_response(204)
            self.end_headers()

        def log_message(self, *_: Any) -> None:
            pass

    arrived: list[str] = []
    receiver = ThreadingHTTPServer(("127.0.0.1", 0), Slow)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    block = ("rl4-cyberattacks", "CAT.CYBER", "output", "block")
    try:
        first = serve(db_url, webhook_attempts=1, webhook_timeout_s=60)
        obs = next(first)
        lab = obs.member("lab-a", "reviewer")
        hook_id = obs.post("/api/webhooks", lab, {
            "url": f"http://127.0.0.1:{receiver.server_address[1]}/hook", "secret": SECRET,
        }).json()["id"]
        push(obs.url, lab.token, summaries_from_decisions(
            "guard-4", START, timedelta(minutes=5), [[block, None, None]]))
        deadline = time.monotonic() + 30
        while not arrived and time.monotonic() < deadline:
            time.sleep(0.05)
        (delivery,) = arrived
        first.close()  # the observatory stops with the call in flight

        second = serve(db_url, webhook_attempts=1, webhook_timeout_s=0.2)
        obs = next(second)
        (kept,) = obs.get(f"/api/webhooks/{hook_id}/deliveries", lab).json()
        assert (kept["id"], kept["status"]) == (delivery, "pending")
        time.sleep(0.3)  # longer than the new policy's whole retry window
        answer.set()
        assert obs.post(f"/api/webhooks/deliveries/{delivery}/redeliver", lab, None
                        ).status_code == 202
        obs.drain()
        (kept,) = obs.get(f"/api/webhooks/{hook_id}/deliveries", lab).json()
        assert (kept["status"], kept["attempts"]) == ("delivered", 1)
        assert arrived == [delivery, delivery]
        second.close()
    finally:
        answer.set()
        receiver.shutdown()
        receiver.server_close()


def test_a_reconnecting_feed_gets_what_it_missed_then_live_alerts(obs: Observatory) -> None:
    lab, other = obs.member("lab-a"), obs.member("lab-b")
    block = ("rl4-cyberattacks", "CAT.CYBER", "output", "block")

    def raise_alert(who: Member, guard: str) -> int:
        assert push(obs.url, who.token, summaries_from_decisions(
            guard, START, timedelta(minutes=5), [[block, None, None]])).alerts == 1
        return int(obs.get("/api/alerts", who).json()[0]["id"])

    seen = raise_alert(lab, "guard-a1")
    missed = raise_alert(lab, "guard-a2")
    raise_alert(other, "guard-b1")  # not lab-a's to see
    feed = SseReader(obs, lab, last_event_id=str(seen))
    try:
        assert feed.alerts.get(timeout=30)["id"] == missed
        live = raise_alert(lab, "guard-a3")
        assert feed.alerts.get(timeout=30)["id"] == live
        assert feed.alerts.empty()
    finally:
        feed.close()
    # A header that is not an alert id is ignored: the feed is live only.
    fresh = SseReader(obs, lab, last_event_id="not-a-number")
    try:
        live = raise_alert(lab, "guard-a4")
        assert fresh.alerts.get(timeout=30)["id"] == live
        assert fresh.alerts.empty()
    finally:
        fresh.close()
