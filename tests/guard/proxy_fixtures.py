"""A real guard proxy on loopback in front of a real upstream, for the proxy tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp.test_utils import TestServer

from redline.guard.audit import AuditLog
from redline.guard.auth import ClientKey, KeyRing, digest
from redline.guard.detectors.base import DetectorResources
from redline.guard.engine import Guard
from redline.guard.proxy import ProxyConfig, create_guard_app
from redline.guard.store.open import open_store_checked
from redline.policy.load import load_policy

POLICIES = Path(__file__).parent / "policies"
CLIENT_KEY = "rlk_test_client_key"
REVIEWER_KEY = "rlk_test_reviewer_key"
ADMIN_KEY = "rlk_test_admin_key"
LIMITED_KEY = "rlk_test_limited_key"
STRICT_KEY = "rlk_test_strict_key"


def key_ring() -> KeyRing:
    return KeyRing([
        ClientKey(principal="alice", sha256=digest(CLIENT_KEY)),
        ClientKey(principal="rita", sha256=digest(REVIEWER_KEY), roles=["reviewer"]),
        ClientKey(principal="ops", sha256=digest(ADMIN_KEY), roles=["admin"]),
        ClientKey(principal="bob", sha256=digest(LIMITED_KEY), rate_per_s=1.0),
        ClientKey(principal="carol", sha256=digest(STRICT_KEY), context="strict"),
    ])


@dataclass
class Proxy:
    url: str
    guard: Guard
    audit_path: Path
    http: aiohttp.ClientSession

    def headers(self, key: str = CLIENT_KEY, **extra: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {key}", **extra}

    async def chat(self, messages: list[dict[str, Any]], key: str = CLIENT_KEY,
                   **body: Any) -> tuple[int, dict[str, Any], dict[str, str]]:
        headers = self.headers(key, **body.pop("headers", {}))
        async with self.http.post(f"{self.url}/v1/chat/completions",
                                  json={"model": "m", "messages": messages, **body},
                                  headers=headers) as resp:
            return resp.status, await resp.json(content_type=None), dict(resp.headers)

    async def stream(self, messages: list[dict[str, Any]], key: str = CLIENT_KEY
                     ) -> list[dict[str, Any]]:
        """Every chunk the client receives, in order."""
        import json

        chunks: list[dict[str, Any]] = []
        async with self.http.post(f"{self.url}/v1/chat/completions",
                                  json={"model": "m", "messages": messages, "stream": True},
                                  headers=self.headers(key)) as resp:
            assert resp.status == 200, await resp.text()
            async for line in resp.content:
                text = line.decode().strip()
                if text.startswith("data:") and text[5:].strip() != "[DONE]":
                    chunks.append(json.loads(text[5:]))
        return chunks


@asynccontextmanager
async def running_proxy(tmp_path: Path, upstream: str, policy: str = "rules-only.yaml",
                        store: str = "memory:", options: dict[str, Any] | None = None
                        ) -> AsyncIterator[Proxy]:
    pol = load_policy(str(POLICIES / policy) if policy.endswith(".yaml") else policy)
    audit_path = tmp_path / "audit.jsonl"
    guard = Guard(pol, await open_store_checked(store), audit=AuditLog(audit_path),
                  resources=DetectorResources(options=options or {}))
    app = create_guard_app(guard, key_ring(), ProxyConfig(upstream=upstream,
                                                          max_body_bytes=64 * 1024))
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        async with aiohttp.ClientSession() as http:
            yield Proxy(url=str(server.make_url("")).rstrip("/"), guard=guard,
                        audit_path=audit_path, http=http)
    finally:
        await server.close()
