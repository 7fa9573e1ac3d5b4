"""The detector contract: what is inspected, what a detector reports, and the registry.

A detector is built once per tripwire (``factory(tripwire, resources)``) and then scores
many items. Heavy shared parts (the embedding model, an external classifier client, a
probe) live in ``DetectorResources`` so tripwires that use the same detector share them.
Scores are calibrated to [0, 1]; the guard, not the detector, compares them with the
tripwire's (adaptive) threshold, so a detector never decides.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from redline.policy.model import Surface, Tripwire
from redline.registry import Registry


@dataclass(frozen=True)
class Inspected:
    """One thing to check: text on a surface, or a tool call (name + arguments)."""

    surface: Surface
    text: str = ""
    tool_name: str | None = None
    #: Parsed tool-call arguments (JSON object) when ``surface`` is ``tool_call``.
    tool_args: dict[str, Any] | None = None
    #: Earlier user turns of the conversation, oldest first, for detectors that read context.
    context: tuple[str, ...] = ()


@dataclass(frozen=True)
class Finding:
    """A detector's verdict on one item for one tripwire."""

    detector: str
    score: float
    #: Lexicon category → score, for the categories the detector looked for.
    categories: dict[str, float] = field(default_factory=dict)
    #: Character spans of ``Inspected.text`` that matched (used to redact), as (start, end).
    spans: tuple[tuple[int, int], ...] = ()
    #: Internal explanation for the audit log; never sent to the client.
    detail: str = ""

    def __post_init__(self) -> None:
        if not 0.0 <= self.score <= 1.0:
            raise ValueError(
                f"detector {self.detector!r} returned score {self.score} outside [0, 1]"
            )


@runtime_checkable
class Detector(Protocol):
    """Scores items for one tripwire."""

    name: str

    async def detect(self, item: Inspected) -> Finding: ...


@dataclass
class DetectorResources:
    """Shared, lazily built parts detectors need; one per guard.

    ``options`` carries settings from the command line or the in-process API, e.g.
    ``{"external_url": ..., "external_model": ..., "semantic_model": PATH}``.
    """

    options: dict[str, Any] = field(default_factory=dict)
    _cache: dict[str, Any] = field(default_factory=dict)

    def shared(self, key: str, build: Callable[[], Any]) -> Any:
        """The object stored under ``key``, built by ``build()`` on first use."""
        if key not in self._cache:
            self._cache[key] = build()
        return self._cache[key]


DetectorFactory = Callable[[Tripwire, DetectorResources], Detector]

#: Detector name (the ``detector:`` field of a tripwire) → factory.
detectors: Registry[DetectorFactory] = Registry("detector")
