"""Incremental output checks for frameworks that stream tokens in-process.

    stream = OutputStream(guard, scope)
    for token in model_tokens():
        show(await stream.feed(token))      # "" while the window is held back
        if stream.stopped: break            # stream.decision says why
    show(await stream.finish())

The same hold-back as the proxy: text is released only after a window covering it passed
the output checks (every ``window_tokens`` tokens, or sooner once the oldest held token has
waited ``max_delay_ms`` when the next one arrives); the final check counts in the ledgers.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from redline.guard.decision import Decision
from redline.guard.engine import Guard, Scope
from redline.guard.streaming import redact_tail
from redline.policy.model import StreamSettings
from redline.records.chat import ToolCall


class OutputStream:
    def __init__(self, guard: Guard, scope: Scope, *, context: Sequence[str] = (),
                 settings: StreamSettings | None = None) -> None:
        self.guard = guard
        self.scope = scope
        self.context = tuple(context)
        self.settings = settings or guard.settings.streaming
        self.text = ""
        self.decision: Decision | None = None
        self._released = 0
        self._held_tokens = 0
        self._oldest: float | None = None

    @property
    def stopped(self) -> bool:
        return self.decision is not None and self.decision.stops

    async def feed(self, delta: str) -> str:
        """Add a token; returns the text that may be shown now."""
        if self.stopped:
            return ""
        self.text += delta
        self._held_tokens += 1
        now = time.monotonic()
        if self._oldest is None:
            self._oldest = now
        overdue = now - self._oldest >= self.settings.max_delay_ms / 1000
        if self._held_tokens < self.settings.window_tokens and not overdue:
            return ""
        return await self._check(final=False)

    async def finish(self, tool_calls: Sequence[ToolCall] = ()) -> str:
        """Final check of the whole reply (and its tool calls); returns the rest to show."""
        if self.stopped:
            return ""
        return await self._check(final=True, tool_calls=tool_calls)

    async def _check(self, *, final: bool, tool_calls: Sequence[ToolCall] = ()) -> str:
        self.decision = await self.guard.check_output(
            self.text, self.scope, tool_calls=tool_calls, context=self.context, final=final)
        self._held_tokens, self._oldest = 0, None
        if self.decision.stops:
            return ""
        start, self._released = self._released, len(self.text)
        if self.decision.action == "redact":
            return redact_tail(self.text, self.decision.spans(),
                               start)
        return self.text[start:]
