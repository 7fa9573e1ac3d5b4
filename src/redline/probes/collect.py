"""Run a prompt set through a local target and keep the activations a probe reads.

For every example, the outputs of the chosen decoder layers at the prompt's last token and
at each reply token (the "span": exactly the states a generation-time tripwire scores) are
kept, plus the span pooled as configured ("last" token or "mean"), which is what training
fits. Stored as one ``.npz`` (no pickle) with its metadata as a JSON string.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict

from redline.errors import InputError
from redline.models.local import LocalTarget
from redline.probes.datasets import ProbeExample, text_of

Pooling = Literal["last", "mean", "tokens"]
POOLINGS: tuple[Pooling, ...] = ("last", "mean", "tokens")
#: Every third decoder layer of SmolLM2 (30 layers): a sweep at a tenth of the storage.
DEFAULT_LAYERS = (3, 6, 9, 12, 15, 18, 21, 24, 27, 30)
FORMAT: Literal["redline-activations/1"] = "redline-activations/1"

F32 = npt.NDArray[np.float32]


class ActivationsMeta(BaseModel):
    """What the arrays were collected from."""

    model_config = ConfigDict(extra="forbid")

    format: Literal["redline-activations/1"] = FORMAT
    set_name: str
    set_path: str
    concept: str
    split: str
    target: str
    model: str
    model_digest: str
    layers: list[int]
    pooling: Pooling
    #: Each example as a text classifier reads it, for comparisons on the same prompts.
    texts: list[str]


@dataclass(frozen=True)
class Activations:
    """Per example: pooled features per layer, span states per layer, and the label."""

    meta: ActivationsMeta
    #: (layers, examples, hidden)
    pooled: F32
    #: (layers, span tokens of all examples, hidden); example i is offsets[i]:offsets[i+1].
    spans: F32
    offsets: npt.NDArray[np.int64]
    labels: npt.NDArray[np.bool_]

    def layer_index(self, layer: int) -> int:
        if layer not in self.meta.layers:
            raise InputError(
                f"layer {layer} was not collected; collected layers: {self.meta.layers}"
            )
        return self.meta.layers.index(layer)

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as handle:
            np.savez(
                handle, meta=np.array(self.meta.model_dump_json()), pooled=self.pooled,
                spans=self.spans, offsets=self.offsets, labels=self.labels,
            )

    @classmethod
    def load(cls, path: Path) -> Activations:
        """Read a file written by ``save``; anything else is an ``InputError``."""
        try:
            with np.load(path, allow_pickle=False) as data:
                meta = ActivationsMeta.model_validate_json(str(data["meta"]))
                found = cls(
                    meta=meta,
                    pooled=data["pooled"].astype(np.float32),
                    spans=data["spans"].astype(np.float32),
                    offsets=data["offsets"].astype(np.int64),
                    labels=data["labels"].astype(bool),
                )
        except (OSError, KeyError, ValueError) as exc:
            raise InputError(f"not a redline activations file: {exc}", file=path) from None
        n, layers = len(found.labels), len(meta.layers)
        if found.pooled.shape[:2] != (layers, n) or found.offsets.shape != (n + 1,):
            raise InputError("arrays do not match their metadata", file=path)
        return found


def pool(span: F32, pooling: Pooling) -> F32:
    """(layers, tokens, hidden) → (layers, hidden); "tokens" keeps the mean as the summary
    (training then reads the spans themselves)."""
    pooled: F32 = span[:, -1, :] if pooling == "last" else span.mean(axis=1)
    return pooled


async def collect(
    target: LocalTarget,
    examples: Sequence[ProbeExample],
    layers: Sequence[int],
    pooling: Pooling,
    meta: dict[str, Any],
    progress: Callable[[int], None] | None = None,
) -> Activations:
    """Activations of ``examples`` at ``layers`` (``meta``: set name, path, concept, split)."""
    if not examples:
        raise InputError("no examples to collect")
    spans: list[F32] = []
    for done, example in enumerate(examples, start=1):
        spans.append(await target.span_states(example.messages, example.reply, layers))
        if progress is not None:
            progress(done)
    info = target.info
    if info.digest is None:
        raise InputError(f"{target.uri} reports no weights digest; a probe could not be bound")
    lengths = [s.shape[1] for s in spans]
    return Activations(
        meta=ActivationsMeta(
            **meta, target=target.uri, model=info.model, model_digest=info.digest,
            layers=list(layers), pooling=pooling, texts=[text_of(e) for e in examples],
        ),
        pooled=np.stack([pool(s, pooling) for s in spans], axis=1),
        spans=np.concatenate(spans, axis=1),
        offsets=np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
        labels=np.array([e.positive for e in examples], dtype=bool),
    )


def describe(activations: Activations) -> str:
    """One line for the CLI."""
    meta = activations.meta
    return json.dumps({
        "set": meta.set_name, "split": meta.split, "examples": len(activations.labels),
        "positives": int(activations.labels.sum()), "layers": meta.layers,
        "pooling": meta.pooling, "model_digest": meta.model_digest[:16],
    })
