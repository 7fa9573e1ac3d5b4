"""Stream hold-back: no streamed token reaches the client before a window covering it has
passed the output checks.

Upstream events are held until ``window_tokens`` of them are pending or the oldest has
waited ``max_delay_ms``; then the whole reply so far is checked and the pending events are
released, rewritten (redaction) or replaced by a final chunk that says why the stream ended.
Tool-call deltas are held until the stream ends, because arguments are only meaningful
whole. The added delay per token is therefore bounded by ``max_delay_ms`` plus one check.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from redline.guard.decision import Decision, redact
from redline.policy.model import StreamSettings
from redline.records.chat import ToolCall

#: The SSE line that ends an OpenAI stream.
DONE = "[DONE]"


@dataclass
class StreamEvent:
    """One upstream SSE event: its raw bytes and what it adds to the reply."""

    raw: bytes
    text: str = ""
    #: True for events that carry tool-call deltas (held to the end).
    tool: bool = False
    done: bool = False
    data: dict[str, Any] | None = None


@dataclass
class Reply:
    """The reply assembled from a stream so far."""

    text: str = ""
    tool_calls: dict[int, dict[str, str]] = field(default_factory=dict)
    finish_reason: str | None = None
    model: str = ""
    chunk_id: str = ""

    def calls(self) -> list[ToolCall]:
        return [ToolCall(id=c.get("id") or f"call_{i}", name=c.get("name", ""),
                         arguments=c.get("arguments", "") or "{}")
                for i, c in sorted(self.tool_calls.items())]

    def completion(self) -> dict[str, Any]:
        """The reply as a non-streamed chat completion (what a reviewer releases)."""
        message: dict[str, Any] = {"role": "assistant", "content": self.text}
        if self.tool_calls:
            message["tool_calls"] = [
                {"id": c.id, "type": "function",
                 "function": {"name": c.name, "arguments": c.arguments}}
                for c in self.calls()
            ]
        return {"id": self.chunk_id, "object": "chat.completion", "model": self.model,
                "choices": [{"index": 0, "message": message,
                             "finish_reason": self.finish_reason or "stop"}]}


def parse_event(line: bytes, reply: Reply) -> StreamEvent | None:
    """Parse one SSE ``data:`` line and fold it into ``reply``; other lines are dropped."""
    stripped = line.strip()
    if not stripped.startswith(b"data:"):
        return None
    payload = stripped[5:].strip().decode("utf-8", "replace")
    if payload == DONE:
        return StreamEvent(raw=b"data: [DONE]\n\n", done=True)
    try:
        data = json.loads(payload)
    except json.JSONDecodeError:
        return None
    event = StreamEvent(raw=stripped + b"\n\n", data=data)
    if not isinstance(data, dict):
        return event
    reply.model = reply.model or str(data.get("model", ""))
    reply.chunk_id = reply.chunk_id or str(data.get("id", ""))
    for choice in data.get("choices") or []:
        if not isinstance(choice, dict):
            continue
        delta = choice.get("delta") or {}
        if isinstance(delta.get("content"), str):
            event.text += delta["content"]
        for call in delta.get("tool_calls") or []:
            event.tool = True
            slot = reply.tool_calls.setdefault(int(call.get("index", 0)), {})
            if call.get("id"):
                slot["id"] = call["id"]
            fn = call.get("function") or {}
            if fn.get("name"):
                slot["name"] = slot.get("name", "") + fn["name"]
            if fn.get("arguments"):
                slot["arguments"] = slot.get("arguments", "") + fn["arguments"]
        if choice.get("finish_reason"):
            reply.finish_reason = choice["finish_reason"]
    reply.text += event.text
    return event


#: check(reply, final) -> decision; ``final`` is True once the upstream stream has ended.
Check = Callable[[Reply, bool], Awaitable[Decision]]


@dataclass
class Outcome:
    """What the stream loop sends next: bytes to write, and whether the stream is over."""

    data: bytes
    stopped: Decision | None = None


class HoldBack:
    """Turns upstream events into client bytes, releasing only checked windows."""

    def __init__(self, settings: StreamSettings, check: Check,
                 rewrite: Callable[[str], bytes], stop: Callable[[Decision], bytes]) -> None:
        self.settings = settings
        self.check = check
        self.rewrite = rewrite
        self.stop = stop
        self.reply = Reply()
        self._pending: list[StreamEvent] = []
        self._held_tools: list[StreamEvent] = []
        self._oldest: float | None = None
        self._pending_tokens = 0
        self._released_chars = 0
        self.checks = 0

    def deadline(self) -> float | None:
        """Monotonic time by which the pending window must be checked."""
        if self._oldest is None:
            return None
        return self._oldest + self.settings.max_delay_ms / 1000

    def add(self, event: StreamEvent) -> bool:
        """Hold an event; True when the window is full and should be checked now."""
        if event.tool:
            self._held_tools.append(event)
        else:
            self._pending.append(event)
            self._pending_tokens += bool(event.text)
            if self._oldest is None:
                self._oldest = time.monotonic()
        return self._pending_tokens >= self.settings.window_tokens

    async def flush(self, final: bool) -> Outcome:
        """Check the reply so far and release (or stop) the pending window."""
        self.checks += 1
        decision = await self.check(self.reply, final)
        if decision.stops:
            return Outcome(data=self.stop(decision), stopped=decision)
        pending, self._pending, self._oldest = self._pending, [], None
        self._pending_tokens = 0
        if final:
            pending += self._held_tools
        start = self._released_chars
        self._released_chars = len(self.reply.text)
        spans = decision.spans() if decision.action == "redact" else []
        if spans and any(e.text for e in pending):
            texts = [i for i, e in enumerate(pending) if e.text]
            before = b"".join(e.raw for e in pending[: texts[0]] if not e.text)
            after = b"".join(e.raw for e in pending[texts[-1] + 1 :] if not e.text)
            return Outcome(data=before + self.rewrite(redact_tail(self.reply.text, spans, start))
                           + after)
        return Outcome(data=b"".join(e.raw for e in pending))


def redact_tail(text: str, spans: list[tuple[int, int]], start: int) -> str:
    """Redacted text of ``text[start:]``: spans are clipped to the unreleased tail."""
    clipped = [(max(a, start) - start, b - start) for a, b in spans if b > start]
    return redact(text[start:], clipped)


class LineSplitter:
    """Splits upstream bytes into lines, carrying a partial line over to the next chunk."""

    def __init__(self) -> None:
        self._rest = b""

    def feed(self, chunk: bytes) -> list[bytes]:
        lines = (self._rest + chunk).split(b"\n")
        self._rest = lines.pop()
        return lines

    def tail(self) -> list[bytes]:
        """What is left at the end of the stream (a last line without a newline)."""
        rest, self._rest = self._rest, b""
        return [rest] if rest.strip() else []
