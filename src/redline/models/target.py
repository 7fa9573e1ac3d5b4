"""The ``Target`` protocol: anything that answers chat messages.

An OpenAI-compatible endpoint, the embedded local model, a guarded system: the engine,
the attacks and the judges see them all through this one interface.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Sequence
from typing import Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict

from redline.records.chat import ChatMessage, GenerateConfig, ModelOutput, ToolDefinition
from redline.records.runlog import TargetInfo


class StreamChunk(BaseModel):
    """A piece of a streamed reply: text delta, or the final output when ``done``."""

    model_config = ConfigDict(extra="forbid")

    delta: str = ""
    done: bool = False
    #: Present on the last chunk only.
    output: ModelOutput | None = None


async def whole_reply_stream(reply: Awaitable[ModelOutput]) -> AsyncIterator[StreamChunk]:
    """The stream of a reply only known whole (an agent's final answer, a guarded reply):
    its text as one delta, then the output."""
    output = await reply
    if output.message.content:
        yield StreamChunk(delta=output.message.content)
    yield StreamChunk(done=True, output=output)


@runtime_checkable
class Target(Protocol):
    """A system under test that generates replies to chat messages."""

    @property
    def info(self) -> TargetInfo:
        """Identity for the run log (URI, model name, weights digest when known)."""
        ...

    async def generate(
        self,
        messages: Sequence[ChatMessage],
        config: GenerateConfig,
        tools: Sequence[ToolDefinition] = (),
    ) -> ModelOutput:
        """Return one reply. Raises ``TargetError`` subclasses on failure."""
        ...

    def stream(
        self,
        messages: Sequence[ChatMessage],
        config: GenerateConfig,
        tools: Sequence[ToolDefinition] = (),
    ) -> AsyncIterator[StreamChunk]:
        """Yield text deltas, then one chunk with ``done=True`` and the full output."""
        ...

    async def aclose(self) -> None:
        """Release connections, threads and models."""
        ...


@runtime_checkable
class HiddenStatesTarget(Protocol):
    """A target whose activations can be read (open weights)."""

    async def hidden_states(
        self, messages: Sequence[ChatMessage], layers: Sequence[int] | None = None
    ) -> list[list[list[float]]]:
        """Per requested layer, the per-token hidden vectors of the rendered prompt."""
        ...
