"""``guard:POLICY+URI``: the guarded system as an evaluation target.

    redline eval --policy idais --target guard:idais+local:smollm2

Every request goes through the same checks as the proxy (in-process, fresh memory state per
run): a stopped input never reaches the model, a stopped reply is replaced by the guard's
message. Evaluating a model with and without its guard shows, in one report, what the red
lines buy in attack success and cost in over-refusal. Each conversation is its own session
(keyed by its opening turns), so a multi-turn attack meets the risk ledger as it would live.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Sequence

from redline.guard.decision import Decision, client_message
from redline.guard.detectors.base import DetectorResources
from redline.guard.engine import Guard, Scope
from redline.guard.store.memory import MemoryStore
from redline.models.errors import TargetConfigError
from redline.models.registry import TargetOptions, resolve_target
from redline.models.target import StreamChunk, Target, whole_reply_stream
from redline.policy.load import load_policy
from redline.records.chat import ChatMessage, GenerateConfig, ModelOutput, ToolDefinition
from redline.records.runlog import TargetInfo

SCHEME = "guard"
#: Principal every evaluation request is attributed to.
EVAL_PRINCIPAL = "redline-eval"


def _session(messages: Sequence[ChatMessage]) -> str:
    """A conversation's identity: its first user turn (and system prompt)."""
    head = [m.content for m in messages if m.role == "system"][:1]
    head += [m.content for m in messages if m.role == "user"][:1]
    return hashlib.sha256("\x00".join(head).encode()).hexdigest()[:24]


def _stopped(decision: Decision, model: str) -> ModelOutput:
    message = ChatMessage(role="assistant", content=client_message(decision),
                          metadata={"guard": {"decision": decision.action,
                                              "red_lines": decision.red_lines(),
                                              "tripwires": [t.tripwire for t in decision.trips]}})
    return ModelOutput(message=message, finish_reason="content_filter", model=model)


class GuardedTarget:
    """A target behind the guard."""

    def __init__(self, uri: str, inner: Target, guard: Guard, context: str | None) -> None:
        self.uri = uri
        self.inner = inner
        self.guard = guard
        self.context = context

    @property
    def info(self) -> TargetInfo:
        inner = self.inner.info
        return TargetInfo(uri=self.uri, model=inner.model, digest=inner.digest,
                          metadata={**inner.metadata, "guard_policy": self.guard.policy.id,
                                    "guard_policy_digest": self.guard.policy.digest(),
                                    "guard_inactive": self.guard.status.inactive})

    def _scope(self, messages: Sequence[ChatMessage]) -> Scope:
        return Scope(principal=EVAL_PRINCIPAL, session=_session(messages), context=self.context)

    async def generate(self, messages: Sequence[ChatMessage], config: GenerateConfig,
                       tools: Sequence[ToolDefinition] = ()) -> ModelOutput:
        scope = self._scope(messages)
        decision = await self.guard.check_input(messages, scope)
        model = self.inner.info.model
        if decision.stops:
            return _stopped(decision, model)
        output = await self.inner.generate(messages, config, tools)
        users = [m.content for m in messages if m.role == "user"]
        decision = await self.guard.check_output(output.message.content, scope,
                                                 tool_calls=output.message.tool_calls,
                                                 context=users)
        if decision.stops:
            stopped = _stopped(decision, model)
            return stopped.model_copy(update={"usage": output.usage,
                                              "latency_s": output.latency_s})
        return output

    async def stream(self, messages: Sequence[ChatMessage], config: GenerateConfig,
                     tools: Sequence[ToolDefinition] = ()) -> AsyncIterator[StreamChunk]:
        """The whole checked reply as one delta: evaluation needs the verdict, not the
        timing of a hold-back window (the proxy streams for real)."""
        async for chunk in whole_reply_stream(self.generate(messages, config, tools)):
            yield chunk

    async def aclose(self) -> None:
        await asyncio.gather(self.inner.aclose(), self.guard.aclose())


def from_uri(uri: str, options: TargetOptions) -> GuardedTarget:
    """``guard:POLICY+TARGET_URI``; ``options.extra["guard_context"]`` picks a context and
    ``options.extra["guard_options"]`` configures detectors."""
    rest = uri.split(":", 1)[1] if ":" in uri else ""
    policy_ref, sep, inner_uri = rest.partition("+")
    if not sep or not policy_ref or not inner_uri:
        raise TargetConfigError(
            f"target {uri!r}: write guard:POLICY+TARGET, e.g. guard:idais+local:smollm2"
        )
    policy = load_policy(policy_ref)
    inner = resolve_target(inner_uri, options)
    resources = DetectorResources(options=dict(options.extra.get("guard_options", {})))
    guard = Guard(policy, MemoryStore(), resources=resources)
    context = options.extra.get("guard_context")
    return GuardedTarget(uri, inner, guard, context if isinstance(context, str) else None)
