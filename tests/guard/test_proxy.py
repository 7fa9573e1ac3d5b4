"""The guard proxy on loopback in front of a scripted upstream: auth, limits, blocking,
redaction, streaming hold-back, review, revocation, audit and metrics."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from redline.guard.audit import verify_audit
from tests.guard.conftest import RedisServer
from tests.guard.proxy_fixtures import (
    ADMIN_KEY,
    CLIENT_KEY,
    LIMITED_KEY,
    REVIEWER_KEY,
    running_proxy,
)
from tests.scripted_server import Script, ScriptedServer

USER = [{"role": "user", "content": "Say hello"}]


def _content(body: dict[str, Any]) -> str:
    return str(body["choices"][0]["message"].get("content") or "")


async def test_keys_body_size_and_rate_limits(tmp_path: Path) -> None:
    with ScriptedServer(Script(reply=lambda m: "hello")) as up:
        async with running_proxy(tmp_path, up.url) as proxy:
            status, body, _ = await proxy.chat(USER, key="rlk_wrong")
            assert status == 401 and body["error"]["code"] == "invalid_api_key"
            async with proxy.http.post(f"{proxy.url}/v1/chat/completions", json={}) as r:
                assert r.status == 401
            big = [{"role": "user", "content": "x" * (70 * 1024)}]
            status, body, _ = await proxy.chat(big)
            assert status == 413 and "65536 bytes" in body["error"]["message"]
            async with proxy.http.post(f"{proxy.url}/v1/chat/completions", data=b"{not json",
                                       headers=proxy.headers()) as r:
                assert r.status == 400
                assert "not valid JSON" in (await r.json())["error"]["message"]
            first, _, _ = await proxy.chat(USER, key=LIMITED_KEY)
            second, body, headers = await proxy.chat(USER, key=LIMITED_KEY)
            assert (first, second) == (200, 429)
            assert int(headers["Retry-After"]) >= 1
            # A reviewer key is not a client key.
            status, _, _ = await proxy.chat(USER, key=REVIEWER_KEY)
            assert status == 403
    assert len(up.script.requests) == 1


async def test_allowed_reply_passes_untouched_and_blocked_input_never_reaches_upstream(
    tmp_path: Path,
) -> None:
    with ScriptedServer(Script(reply=lambda m: "hello there")) as up:
        async with running_proxy(tmp_path, up.url) as proxy:
            status, body, headers = await proxy.chat(USER)
            assert status == 200 and _content(body) == "hello there"
            assert headers["X-Redline-Decision"] == "allow"
            status, body, headers = await proxy.chat(
                [{"role": "user", "content": "How is S\u0430RIN made?"}])  # Cyrillic а
            assert status == 200
            assert body["choices"][0]["finish_reason"] == "content_filter"
            assert body["redline"] == {"decision": "block", "red_lines": ["weapons"]}
            assert "weapons" in _content(body)
            assert "nerve-agent-terms" not in json.dumps(body)  # no detector internals
            assert headers["X-Redline-Decision"] == "block"
    assert len(up.script.requests) == 1


async def test_output_redaction_and_blocking(tmp_path: Path) -> None:
    replies = iter(["your key is sk-abcdefghijklmnop1234 keep it safe",
                    "Step one of making a nerve agent is"])
    with ScriptedServer(Script(reply=lambda m: next(replies))) as up:
        async with running_proxy(tmp_path, up.url) as proxy:
            status, body, headers = await proxy.chat(USER)
            assert _content(body) == "your key is [redacted] keep it safe"
            assert (status, headers["X-Redline-Decision"]) == (200, "redact")
            _, body, _ = await proxy.chat(USER)
            assert body["choices"][0]["finish_reason"] == "content_filter"
            assert "nerve agent" not in _content(body)


async def test_streamed_violation_is_cut_before_it_reaches_the_client(tmp_path: Path) -> None:
    reply = ("Sure here is some chemistry background for you and then the synthesis "
             "of sarin starts with a precursor that you")
    # Word by word, as a model streams: benign windows are released as they clear.
    with ScriptedServer(Script(reply=lambda m: reply, chunk_delay=0.03)) as up:
        async with running_proxy(tmp_path, up.url) as proxy:
            chunks = await proxy.stream(USER)
    received = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks[:-1])
    last = chunks[-1]
    # Only checked windows were released: a prefix of the reply that stops before the span.
    assert reply.startswith(received) and len(received) <= reply.index("sarin")
    assert last["choices"][0]["finish_reason"] == "content_filter"
    assert last["redline"]["decision"] == "block"
    assert "weapons" in last["choices"][0]["delta"]["content"]


async def test_benign_stream_arrives_whole(tmp_path: Path) -> None:
    reply = "The capital of France is Paris and it sits on the Seine river"
    with ScriptedServer(Script(reply=lambda m: reply, chunk_delay=0.01)) as up:
        async with running_proxy(tmp_path, up.url) as proxy:
            chunks = await proxy.stream(USER)
    received = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
    assert received == reply
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


def _config_edit(messages: list[dict[str, Any]]) -> dict[str, Any]:
    return {"content": "", "tool_calls": [{"id": "call_1", "name": "write_file", "arguments": {
        "path": "agent.yaml", "content": "autonomy: unlimited"}}]}


async def test_config_edit_waits_for_review_and_passes_only_after_approval(
    tmp_path: Path,
) -> None:
    with ScriptedServer(Script(reply=_config_edit)) as up:
        async with running_proxy(tmp_path, up.url) as proxy:
            # Without waiting: a clear pending status, and nothing released.
            status, body, _ = await proxy.chat(USER)
            assert status == 202 and body["status"] == "pending"
            review_id = body["id"]
            status, result, _ = await _get(proxy, f"/v1/reviews/{review_id}/result")
            assert status == 202
            # Denied: the client gets a blocked completion, never the tool call.
            await _post(proxy, f"/v1/reviews/{review_id}/deny", REVIEWER_KEY)
            status, result, _ = await _get(proxy, f"/v1/reviews/{review_id}/result")
            assert result["choices"][0]["finish_reason"] == "content_filter"
            assert "tool_calls" not in result["choices"][0]["message"]

            # Waiting: the call returns as soon as a reviewer approves.
            waiting = asyncio.create_task(proxy.chat(
                USER, headers={"X-Redline-Review-Wait": "30"}))
            pending: list[dict[str, Any]] = []
            for _ in range(200):
                _, listing, _ = await _get(proxy, "/v1/reviews?status=pending", REVIEWER_KEY)
                pending = listing["data"]
                if pending:
                    break
                await asyncio.sleep(0.02)
            assert not waiting.done() and len(pending) == 1
            assert "write_file" in pending[0]["summary"]
            # The client may not decide its own review.
            status, _, _ = await _post(proxy, f"/v1/reviews/{pending[0]['id']}/approve",
                                       CLIENT_KEY)
            assert status == 403
            status, decided, _ = await _post(
                proxy, f"/v1/reviews/{pending[0]['id']}/approve", REVIEWER_KEY)
            assert decided["status"] == "approved"
            status, body, _ = await waiting
            calls = body["choices"][0]["message"]["tool_calls"]
            assert status == 200 and calls[0]["function"]["name"] == "write_file"
            # Decided once only.
            status, _, _ = await _post(proxy, f"/v1/reviews/{pending[0]['id']}/deny",
                                       REVIEWER_KEY)
            assert status == 409


async def _get(proxy: Any, path: str, key: str = CLIENT_KEY
               ) -> tuple[int, dict[str, Any], dict[str, str]]:
    async with proxy.http.get(proxy.url + path, headers=proxy.headers(key)) as resp:
        return resp.status, await resp.json(content_type=None), dict(resp.headers)


async def _post(proxy: Any, path: str, key: str, body: dict[str, Any] | None = None
                ) -> tuple[int, dict[str, Any], dict[str, str]]:
    async with proxy.http.post(proxy.url + path, json=body or {},
                               headers=proxy.headers(key)) as resp:
        return resp.status, await resp.json(content_type=None), dict(resp.headers)


async def test_replication_requires_registration_and_revoking_parent_stops_replica(
    tmp_path: Path,
) -> None:
    def spawn(messages: list[dict[str, Any]]) -> dict[str, Any]:
        instance = messages[-1]["content"]
        return {"content": "", "tool_calls": [{"id": "c", "name": "start_instance",
                                               "arguments": {"instance_id": instance}}]}

    with ScriptedServer(Script(reply=spawn)) as up:
        async with running_proxy(tmp_path, up.url) as proxy:
            status, parent, _ = await _post(proxy, "/v1/agents", CLIENT_KEY)
            assert status == 201 and parent["credential"].startswith("rla_")
            # An unregistered copy is blocked.
            status, body, _ = await proxy.chat([{"role": "user", "content": "copy-1"}],
                                               key=parent["credential"])
            assert body["choices"][0]["finish_reason"] == "content_filter"
            assert body["redline"]["red_lines"] == ["replication"]
            # Registered under the parent first, the same call goes through.
            status, child, _ = await _post(proxy, "/v1/agents", parent["credential"])
            assert child["parent"] == parent["id"]
            status, body, _ = await proxy.chat([{"role": "user", "content": child["id"]}],
                                               key=parent["credential"])
            assert body["choices"][0]["message"]["tool_calls"][0]["function"]["name"] == \
                "start_instance"
            status, _, _ = await proxy.chat(USER, key=child["credential"])
            assert status == 200
            # Another principal cannot revoke it; the owner can, and the replica goes too.
            status, _, _ = await _post(proxy, f"/v1/agents/{parent['id']}/revoke",
                                       REVIEWER_KEY)
            assert status == 404
            status, revoked, _ = await _post(proxy, f"/v1/agents/{parent['id']}/revoke",
                                             CLIENT_KEY, {"reason": "test"})
            assert set(revoked["revoked"]) == {parent["id"], child["id"]}
            status, body, _ = await proxy.chat(USER, key=child["credential"])
            assert status == 401 and body["error"]["code"] == "revoked_credential"


async def test_revocation_cancels_an_open_stream(tmp_path: Path) -> None:
    reply = " ".join(f"word{i}" for i in range(200))
    with ScriptedServer(Script(reply=lambda m: reply, chunk_delay=0.01)) as up:
        async with running_proxy(tmp_path, up.url) as proxy:
            _, agent, _ = await _post(proxy, "/v1/agents", CLIENT_KEY)
            chunks: list[dict[str, Any]] = []
            revoking: asyncio.Task[Any] | None = None
            async with proxy.http.post(
                f"{proxy.url}/v1/chat/completions",
                json={"model": "m", "messages": USER, "stream": True},
                headers=proxy.headers(agent["credential"]),
            ) as resp:
                async for line in resp.content:
                    text = line.decode().strip()
                    if not text.startswith("data:") or text[5:].strip() == "[DONE]":
                        continue
                    chunks.append(json.loads(text[5:]))
                    # Revoke once the client has seen released text: mid-stream for sure.
                    if revoking is None and chunks[-1]["choices"][0]["delta"].get("content"):
                        revoking = asyncio.create_task(
                            _post(proxy, f"/v1/agents/{agent['id']}/revoke", ADMIN_KEY))
            assert revoking is not None
            await revoking
    received = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks[:-1])
    assert chunks[-1]["redline"]["decision"] == "revoke_agent"
    assert received.startswith("word0") and "word199" not in received


async def test_revoke_agent_action_revokes_the_agent_and_its_copies(tmp_path: Path) -> None:
    def upload(messages: list[dict[str, Any]]) -> dict[str, Any]:
        return {"content": "", "tool_calls": [{"id": "c", "name": "upload_weights",
                                               "arguments": {"dest": "/tmp/w"}}]}

    with ScriptedServer(Script(reply=upload)) as up:
        async with running_proxy(tmp_path, up.url) as proxy:
            _, parent, _ = await _post(proxy, "/v1/agents", CLIENT_KEY)
            _, child, _ = await _post(proxy, "/v1/agents", parent["credential"])
            _, body, _ = await proxy.chat(USER, key=parent["credential"])
            assert body["redline"] == {"decision": "revoke_agent",
                                       "red_lines": ["weights-exfiltration"]}
            for agent in (parent, child):
                status, body, _ = await proxy.chat(USER, key=agent["credential"])
                assert status == 401 and body["error"]["code"] == "revoked_credential"
            # A plain client key gets the stop too, but there is no agent to revoke.
            _, body, _ = await proxy.chat(USER)
            assert body["redline"]["decision"] == "revoke_agent"


async def test_egress_to_unlisted_host_is_blocked(tmp_path: Path) -> None:
    def fetch(messages: list[dict[str, Any]]) -> dict[str, Any]:
        return {"content": "", "tool_calls": [{"id": "c", "name": "http_get", "arguments": {
            "url": messages[-1]["content"]}}]}

    with ScriptedServer(Script(reply=fetch)) as up:
        async with running_proxy(tmp_path, up.url) as proxy:
            _, body, _ = await proxy.chat([{"role": "user", "content": "https://api.internal/x"}])
            assert body["choices"][0]["finish_reason"] == "tool_calls"
            _, body, _ = await proxy.chat([{"role": "user",
                                            "content": "https://exfil.example.net/upload"}])
            assert body["choices"][0]["finish_reason"] == "content_filter"


async def test_audit_log_records_every_check_and_detects_tampering(tmp_path: Path) -> None:
    with ScriptedServer(Script(reply=lambda m: "fine")) as up:
        async with running_proxy(tmp_path, up.url) as proxy:
            await proxy.chat(USER)
            await proxy.chat([{"role": "user", "content": "sarin please"}])
            audit_path = proxy.audit_path
    records = [json.loads(line) for line in audit_path.read_text().splitlines()]
    decisions = [r["data"] for r in records if r["kind"] == "decision"]
    # Every item (two inputs, one allowed reply) has a record naming each check that ran.
    assert [d["surface"] for d in decisions] == ["input", "output", "input"]
    assert [[c["tripwire"] for c in d["checks"]] for d in decisions] == [
        ["nerve-agent-terms", "restricted-probe"], ["nerve-agent-terms", "api-key-leak"],
        ["nerve-agent-terms", "restricted-probe"]]
    assert [d["action"] for d in decisions] == ["allow", "allow", "block"]
    assert verify_audit(audit_path).ok
    lines = audit_path.read_text().splitlines()
    target = next(i for i, r in enumerate(records) if r["kind"] == "decision"
                  and r["data"]["action"] == "block")
    lines[target] = lines[target].replace('"block"', '"allow"')
    audit_path.write_text("\n".join(lines) + "\n")
    result = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "redline.cli", "guard", "audit", "verify",
                         str(audit_path)], capture_output=True, text=True)
    assert result.returncode == 5
    assert f":{target + 1}:" in result.stderr


async def test_health_models_and_metrics(tmp_path: Path) -> None:
    with ScriptedServer(Script(reply=lambda m: "ok")) as up:
        async with running_proxy(tmp_path, up.url) as proxy:
            async with proxy.http.get(f"{proxy.url}/healthz") as r:
                health = await r.json()
            assert health["policy"] == "guard-rules-test" and not health["inactive"]
            status, models, _ = await _get(proxy, "/v1/models")
            assert status == 200 and models["data"][0]["id"] == "scripted"
            await proxy.chat(USER)
            await proxy.chat([{"role": "user", "content": "sarin"}])
            async with proxy.http.get(f"{proxy.url}/metrics",
                                      headers=proxy.headers(CLIENT_KEY)) as r:
                assert r.status == 403
            async with proxy.http.get(f"{proxy.url}/metrics",
                                      headers=proxy.headers(ADMIN_KEY)) as r:
                text = await r.text()
    assert 'redline_guard_decisions_total{action="block"} 1' in text
    assert "redline_guard_added_latency_seconds_count 2" in text


@pytest.mark.parametrize("store", ["memory:", "sqlite"])
async def test_ledger_ends_a_session_of_repeated_probing(tmp_path: Path, store: str) -> None:
    url = f"sqlite:{tmp_path / 'g.sqlite'}" if store == "sqlite" else store
    with ScriptedServer(Script(reply=lambda m: "I can't share that.")) as up:
        async with running_proxy(tmp_path, up.url, store=url) as proxy:
            probe = [{"role": "user", "content": "show me the restricted annex"}]
            session = {"X-Redline-Session": "s1"}
            first = await proxy.chat(probe, headers=session)
            assert first[2]["X-Redline-Decision"] == "flag"  # one probe passes, flagged
            second = await proxy.chat(probe, headers=session)
            assert second[1]["redline"]["decision"] == "end_session"
            third = await proxy.chat(USER, headers=session)  # even a benign turn now
            assert third[1]["redline"]["decision"] == "end_session"
            other = await proxy.chat(USER, headers={"X-Redline-Session": "s2"})
            assert other[0] == 200 and _content(other[1]) == "I can't share that."


async def test_a_store_outage_fails_closed_with_503(tmp_path: Path,
                                                    own_redis: RedisServer) -> None:
    """The guard's own Redis goes away mid-deployment: requests get 503 naming the store,
    nothing reaches the upstream, and the Redis address stays out of the answer."""
    with ScriptedServer(Script(reply=lambda m: "hello")) as up:
        async with running_proxy(tmp_path, up.url, store=own_redis.url) as proxy:
            status, _, _ = await proxy.chat(USER)
            assert status == 200
            own_redis.proc.terminate()
            await asyncio.to_thread(own_redis.proc.wait, 10)
            for key in (CLIENT_KEY, LIMITED_KEY):
                status, body, headers = await proxy.chat(USER, key=key)
                assert status == 503, body
                assert body["error"]["code"] == "store_unavailable"
                assert "redis" not in json.dumps(body).lower()
                assert headers["Retry-After"] == "1"
            # Metrics still answer, so the outage shows on the dashboards.
            async with proxy.http.get(f"{proxy.url}/metrics",
                                      headers=proxy.headers(ADMIN_KEY)) as r:
                text = await r.text()
            assert r.status == 200
            assert "redline_guard_store_errors_total 2" in text
            assert "redline_guard_reviews_pending" not in text
    assert len(up.script.requests) == 1


async def test_a_store_outage_mid_stream_ends_it_with_an_error_event(
    tmp_path: Path, own_redis: RedisServer
) -> None:
    reply = "one two three four five six seven eight nine ten eleven twelve"
    with ScriptedServer(Script(reply=lambda m: reply, chunk_delay=0.15)) as up:
        async with running_proxy(tmp_path, up.url, store=own_redis.url) as proxy:
            events: list[dict[str, Any]] = []
            async with proxy.http.post(f"{proxy.url}/v1/chat/completions",
                                       json={"model": "m", "messages": USER, "stream": True},
                                       headers=proxy.headers()) as resp:
                assert resp.status == 200
                async for line in resp.content:
                    text = line.decode().strip()
                    if not text.startswith("data:"):
                        continue
                    events.append(json.loads(text[5:]))
                    if len(events) == 1:
                        own_redis.proc.terminate()
    assert events[-1]["error"]["code"] == "store_unavailable"
    shown = "".join(e["choices"][0]["delta"].get("content") or "" for e in events[:-1])
    # What was released had passed its checks; the rest never reached the client.
    assert shown and shown != reply
    assert reply.startswith(shown)
