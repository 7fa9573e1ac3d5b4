"""A probe artefact as a generation-time tripwire of the local target, and as a scorer of
finished text: both read the same states (decoder layer ``layer`` at the prompt's last token
and at each reply token) and compare the same probability with the same threshold."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import torch

from redline.errors import InputError
from redline.models.batching import TokenTripwire
from redline.models.local import LocalTarget
from redline.models.registry import TargetOptions, resolve_target
from redline.probes import artefact as store
from redline.probes.artefact import ProbeArtefact
from redline.probes.metrics import sigmoid
from redline.records.chat import ChatMessage


@dataclass(frozen=True)
class LoadedProbe:
    """A probe verified against the target it will read."""

    artefact: ProbeArtefact
    weights: npt.NDArray[np.float32]
    target: LocalTarget

    def tripwire(self) -> TokenTripwire:
        a = self.artefact
        return TokenTripwire(
            name=a.name, layer=a.layer, weights=torch.from_numpy(self.weights.copy()),
            bias=a.bias, threshold=a.threshold,
        )

    async def score(self, messages: Sequence[ChatMessage], reply: str) -> tuple[float, int]:
        """The highest probe probability over the reply's states, and the token index at
        which it occurs (0: the prompt's last token, before any reply token)."""
        states = await self.target.span_states(messages, reply, [self.artefact.layer])
        probs = sigmoid(states[0].astype(np.float64) @ self.weights.astype(np.float64)
                        + self.artefact.bias)
        index = int(np.argmax(probs))
        return float(probs[index]), index


def local_target(uri: str, options: TargetOptions | None = None) -> LocalTarget:
    target = resolve_target(uri, options or TargetOptions())
    if not isinstance(target, LocalTarget):
        raise InputError(f"probes read hidden states: {uri!r} is not a local target")
    return target


def load_probe(path: Path, target: LocalTarget) -> LoadedProbe:
    """Read the probe at ``path``; ``VerificationError`` when it belongs to other weights."""
    artefact, weights = store.load(path)
    artefact.check_model(target.info.digest)
    return LoadedProbe(artefact, weights, target)


def guarded_target(probe: LoadedProbe) -> LocalTarget:
    """A target on the same loaded model whose generations stop when the probe trips."""
    base = probe.target
    return LocalTarget(base.spec.name, system_prompt=base.system_prompt,
                       tripwire=probe.tripwire())
