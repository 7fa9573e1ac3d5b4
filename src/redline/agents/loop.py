"""``AgentLoop``: a target run as a tool-using agent inside a ``ToolEnvironment``.

An agentic protocol judges what a model does, so the model must be able to act: the loop
offers the environment's tools, executes every call the model makes, feeds the results back
and repeats until the model answers without a call. To everything above it (attacks,
solvers, the engine) the loop is just another ``Target``: one ``generate`` returns the final
reply, and the turns in between travel with it as ``metadata["trajectory"]``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

from redline.agents.environment import ToolEnvironment
from redline.models.target import StreamChunk, Target, whole_reply_stream
from redline.records.chat import ChatMessage, GenerateConfig, ModelOutput, ToolDefinition, Usage
from redline.records.runlog import TargetInfo

DEFAULT_MAX_STEPS = 8
#: Key of the final message's metadata that holds the turns the loop added.
TRAJECTORY_KEY = "trajectory"


class AgentLoop:
    """Model → tool calls executed in ``env`` → tool results → model, for at most
    ``max_steps`` model turns.

    The loop borrows its target and its environment: whoever made them sets them up, tears
    them down and closes them (the engine does so per sample).
    """

    def __init__(
        self, target: Target, env: ToolEnvironment, *, max_steps: int = DEFAULT_MAX_STEPS
    ) -> None:
        if max_steps < 1:
            raise ValueError(f"max_steps must be at least 1, got {max_steps}")
        self.target = target
        self.env = env
        self.max_steps = max_steps

    @property
    def info(self) -> TargetInfo:
        return self.target.info

    async def generate(
        self,
        messages: Sequence[ChatMessage],
        config: GenerateConfig,
        tools: Sequence[ToolDefinition] = (),
    ) -> ModelOutput:
        """Run the agent to its final answer (finish reason "length" if ``max_steps`` ran
        out while it was still calling tools); usage and latency are summed over turns."""
        offered = _merge_tools(self.env.tools(), tools)
        conversation = list(messages)
        added: list[ChatMessage] = []
        usage = Usage()
        latency_s = 0.0
        for _ in range(self.max_steps):
            output = await self.target.generate(conversation, config, offered)
            usage += output.usage
            latency_s += output.latency_s
            reply = output.message
            added.append(reply)
            if not reply.tool_calls:
                break
            conversation.append(reply)
            for call in reply.tool_calls:
                result = await self.env.call(call)
                tool_turn = ChatMessage(role="tool", content=result, tool_call_id=call.id)
                conversation.append(tool_turn)
                added.append(tool_turn)
        else:
            output = output.model_copy(update={"finish_reason": "length"})
        return _final(output, added, usage, latency_s)

    async def stream(
        self,
        messages: Sequence[ChatMessage],
        config: GenerateConfig,
        tools: Sequence[ToolDefinition] = (),
    ) -> AsyncIterator[StreamChunk]:
        """The final answer as one delta: intermediate turns are actions, not text to show."""
        async for chunk in whole_reply_stream(self.generate(messages, config, tools)):
            yield chunk

    async def aclose(self) -> None:
        """Nothing to release: the target and the environment belong to the caller."""


def trajectory(output: ModelOutput) -> list[ChatMessage]:
    """The turns an ``AgentLoop`` added (assistant calls, tool results, final reply), read
    back from an output's metadata; empty for an output that did not come from a loop."""
    raw: list[dict[str, Any]] = output.message.metadata.get(TRAJECTORY_KEY, [])
    return [ChatMessage.model_validate(m) for m in raw]


def _merge_tools(
    env_tools: Sequence[ToolDefinition], case_tools: Sequence[ToolDefinition]
) -> list[ToolDefinition]:
    """The environment's tools, then the case's own that do not shadow one of them: the
    environment executes every call, so its definition of a name is the true one."""
    names = {t.name for t in env_tools}
    return [*env_tools, *(t for t in case_tools if t.name not in names)]


def _final(
    output: ModelOutput, added: list[ChatMessage], usage: Usage, latency_s: float
) -> ModelOutput:
    turns = [m.model_dump(mode="json") for m in added]
    message = output.message.model_copy(
        update={"metadata": {**output.message.metadata, TRAJECTORY_KEY: turns}}
    )
    return output.model_copy(update={"message": message, "usage": usage, "latency_s": latency_s})
