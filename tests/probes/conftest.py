"""A small harmful-intent probe trained once per session on the real embedded model."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

import pytest

from redline.models.local import LocalTarget
from redline.probes import artefact as store
from redline.probes.collect import Activations, collect
from redline.probes.datasets import examples, load_set, per_class, resolve
from redline.probes.train import train_probe

#: Few examples and two layers keep the session's model work to a few seconds.
LAYERS = [12, 18]
PER_CLASS = 10
CONTROLS = 16


@dataclass(frozen=True)
class SmallProbe:
    path: Path
    train: Activations
    controls: Activations


async def _collect(target: LocalTarget, name: str, limit: int) -> Activations:
    """The first ``limit`` items of each class, with their generic-reply variants."""
    data = load_set(name)
    found = examples(data)
    plain = len(data.positive) + len(data.negative)
    kept = per_class(found[:plain], limit)
    found = kept + [found[plain + found.index(e)] for e in kept if len(found) > plain]
    meta = {"set_name": data.name, "set_path": str(resolve(name)), "concept": data.concept,
            "split": data.split}
    return await collect(target, found, LAYERS, data.pooling, meta)


@pytest.fixture(scope="session")
def small_probe(tmp_path_factory: pytest.TempPathFactory) -> SmallProbe:
    async def build() -> tuple[Activations, Activations]:
        target = LocalTarget()
        return (await _collect(target, "harmful-intent", PER_CLASS),
                await _collect(target, "controls", CONTROLS))

    train, controls = asyncio.run(build())
    artefact, weights = train_probe(train, controls, "harm-small", target_fpr=0.05)
    path = tmp_path_factory.mktemp("probe") / "harm-small.json"
    store.save(artefact, weights, path)
    return SmallProbe(path, train, controls)
