"""The guard's ``probe`` detector: the tripwire's probe read on the inspected text.

Options (``DetectorResources.options``): ``probe``, the path of a probe artefact;
``probe_target``, the local target whose activations it reads (default ``local:smollm2``).
An input is scored as the last user turn after the earlier ones; an output (or tool text)
as the reply to the earlier user turns. The probe's probability is mapped, monotonically, so
that its calibrated threshold lands on the tripwire's threshold: the guard's comparison then
fires exactly where the probe's calibration says it should.
"""

from __future__ import annotations

from pathlib import Path

from redline.errors import InputError
from redline.guard.detectors.base import DetectorResources, Finding, Inspected, detectors
from redline.policy.model import Tripwire
from redline.probes.tripwire import LoadedProbe, load_probe, local_target
from redline.records.chat import ChatMessage

NAME = "probe"
DEFAULT_TARGET = "local:smollm2"


def to_guard_scale(p: float, calibrated: float, guard: float) -> float:
    """Piecewise-linear map of [0, calibrated, 1] onto [0, guard, 1]."""
    if calibrated <= 0.0:
        return 1.0
    if p < calibrated:
        return guard * p / calibrated
    if calibrated >= 1.0:
        return 1.0
    return min(1.0, guard + (1.0 - guard) * (p - calibrated) / (1.0 - calibrated))


class ProbeDetector:
    name = NAME

    def __init__(self, tripwire: Tripwire, probe: LoadedProbe) -> None:
        self.tripwire = tripwire
        self.probe = probe

    async def detect(self, item: Inspected) -> Finding:
        messages = [ChatMessage(role="user", content=turn) for turn in item.context]
        if item.surface == "input":
            messages.append(ChatMessage(role="user", content=item.text))
            reply = ""
        else:
            reply = item.text
        p, index = await self.probe.score(messages, reply)
        a = self.probe.artefact
        score = to_guard_scale(p, a.threshold, self.tripwire.threshold)
        return Finding(
            NAME, score, dict.fromkeys(self.tripwire.categories, score),
            detail=f"probe {a.name} layer {a.layer}: P={p:.4f} at token {index} "
            f"(calibrated threshold {a.threshold:.4f})",
        )


@detectors.register(NAME)
def probe_detector(tripwire: Tripwire, resources: DetectorResources) -> ProbeDetector:
    path = resources.options.get("probe")
    if not path:
        raise InputError(
            f"tripwire {tripwire.id!r} uses the probe detector: give the probe artefact "
            "with the option probe=PATH (e.g. `redline probes train` output)"
        )
    uri = str(resources.options.get("probe_target", DEFAULT_TARGET))

    def build() -> LoadedProbe:
        return load_probe(Path(path), local_target(uri))

    probe: LoadedProbe = resources.shared(f"probe:{uri}:{path}", build)
    return ProbeDetector(tripwire, probe)
