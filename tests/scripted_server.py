"""A real OpenAI-compatible HTTP server on loopback whose replies and failures are scripted.

It runs in its own thread and event loop, so synchronous tests, async tests and CLI
subprocesses can all talk to it. Used where no real model can produce a behaviour on
demand: a fixed reply, a 429 before success, a stall.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

#: A reply is text, or ``{"content": str, "tool_calls": [{"id", "name", "arguments"}]}``
#: for an agent's turn that calls tools (``arguments`` a JSON string or an object).
Reply = str | dict[str, Any]
ReplyFn = Callable[[list[dict[str, Any]]], Reply]


@dataclass
class Script:
    """What the server does. Mutable while running: tests change it between phases."""

    reply: ReplyFn = lambda messages: "I can't help with that."
    #: Seconds to wait before answering each request.
    delay: float = 0.0
    #: Answer the first N requests with this status (e.g. 429) before behaving.
    fail_first: int = 0
    fail_status: int = 429
    retry_after: str | None = "0"
    #: Never answer (accept the request and hang).
    stall: bool = False
    #: For ``stream: true`` requests: seconds between chunks (one chunk per word).
    chunk_delay: float = 0.0
    requests: list[dict[str, Any]] = field(default_factory=list)


class ScriptedServer:
    def __init__(self, script: Script | None = None) -> None:
        self.script = script or Script()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._runner: web.AppRunner | None = None
        self.port = 0
        self._thread = threading.Thread(target=self._run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def __enter__(self) -> ScriptedServer:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("scripted server did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        async def stop() -> None:
            if self._runner is not None:
                await self._runner.cleanup()
            # Handlers still stalled on purpose: cancel them so the loop closes cleanly.
            others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in others:
                task.cancel()
            await asyncio.gather(*others, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._completions)
        app.router.add_get("/v1/models", self._models)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        self._loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        self._loop.run_until_complete(site.start())
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self._ready.set()
        self._loop.run_forever()

    async def _completions(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        s = self.script
        s.requests.append(body)
        if s.stall:
            await asyncio.sleep(3600)
        if len(s.requests) <= s.fail_first:
            headers = {"Retry-After": s.retry_after} if s.retry_after is not None else {}
            return web.json_response(
                {"error": {"message": "scripted failure", "type": "rate_limit"}},
                status=s.fail_status, headers=headers,
            )
        if s.delay:
            await asyncio.sleep(s.delay)
        message, finish_reason = _message(s.reply(body["messages"]))
        if body.get("stream"):
            return await self._stream(request, body, message, finish_reason)
        return web.Response(
            content_type="application/json",
            text=json.dumps({
                "id": f"chatcmpl-{len(s.requests)}", "object": "chat.completion", "created": 0,
                "model": body.get("model", "scripted"),
                "choices": [{"index": 0, "finish_reason": finish_reason, "message": message}],
                "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
            }),
        )

    async def _models(self, request: web.Request) -> web.StreamResponse:
        return web.json_response({"object": "list", "data": [{"id": "scripted",
                                                              "object": "model"}]})

    async def _stream(self, request: web.Request, body: dict[str, Any],
                      message: dict[str, Any], finish_reason: str) -> web.StreamResponse:
        """OpenAI-style SSE: a role chunk, one chunk per word, tool calls, a finish chunk."""
        out = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await out.prepare(request)
        base = {"id": f"chatcmpl-{len(self.script.requests)}",
                "object": "chat.completion.chunk", "created": 0,
                "model": body.get("model", "scripted")}

        async def send(delta: dict[str, Any], finish: str | None = None) -> None:
            chunk = {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
            await out.write(f"data: {json.dumps(chunk)}\n\n".encode())

        await send({"role": "assistant", "content": ""})
        words = (message.get("content") or "").split(" ")
        for i, word in enumerate(w for w in words if w or len(words) == 1):
            if self.script.chunk_delay:
                await asyncio.sleep(self.script.chunk_delay)
            await send({"content": word if i == 0 else " " + word})
        for i, call in enumerate(message.get("tool_calls", [])):
            await send({"tool_calls": [{"index": i, "id": call["id"], "type": "function",
                                        "function": {"name": call["function"]["name"],
                                                     "arguments": ""}}]})
            await send({"tool_calls": [{"index": i, "function": {
                "arguments": call["function"]["arguments"]}}]})
        await send({}, finish_reason)
        await out.write(b"data: [DONE]\n\n")
        await out.write_eof()
        return out


def _message(reply: Reply) -> tuple[dict[str, Any], str]:
    """The assistant message in OpenAI's wire format, and its finish reason."""
    if isinstance(reply, str):
        return {"role": "assistant", "content": reply}, "stop"
    calls = [
        {"id": c["id"], "type": "function",
         "function": {"name": c["name"],
                      "arguments": c["arguments"] if isinstance(c["arguments"], str)
                      else json.dumps(c["arguments"])}}
        for c in reply.get("tool_calls", [])
    ]
    message: dict[str, Any] = {"role": "assistant", "content": reply.get("content") or None}
    if calls:
        message["tool_calls"] = calls
    return message, "tool_calls" if calls else "stop"
