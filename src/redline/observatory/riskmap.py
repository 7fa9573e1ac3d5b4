"""The risk map: models × categories, from the latest visible attestation per model."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel

from redline.observatory.tables import Attestation


class Cell(BaseModel):
    #: Common Risk Tier label (``CRT-2``) when the attestation carries tiers, else None.
    tier: str | None
    #: Failure rate of the category's samples.
    rate: float | None
    attestation: str


class RiskMap(BaseModel):
    models: list[str]
    categories: list[str]
    cells: dict[str, dict[str, Cell]]


def _cells(a: Attestation) -> dict[str, Cell]:
    predicate: dict[str, Any] = a.statement.get("predicate", {})
    cells: dict[str, Cell] = {}
    for cat, counts in (predicate.get("metrics", {}).get("by_category") or {}).items():
        n = counts.get("fail", 0) + counts.get("pass", 0)
        cells[cat] = Cell(tier=None, rate=counts.get("fail", 0) / n if n else None,
                          attestation=a.digest)
    for entry in (predicate.get("tiers") or {}).get("categories", []):
        tier = (entry.get("verdict") or {}).get("tier")
        rate = (entry.get("rate") or {}).get("rate")
        cells[entry["id"]] = Cell(tier=None if tier is None else f"CRT-{tier}", rate=rate,
                                  attestation=a.digest)
    return cells


def risk_map(attestations: Iterable[Attestation]) -> RiskMap:
    latest: dict[str, Attestation] = {}
    for a in sorted(attestations, key=lambda a: a.received_at):
        latest[a.model] = a
    cells = {model: _cells(a) for model, a in sorted(latest.items())}
    categories = sorted({c for row in cells.values() for c in row})
    return RiskMap(models=list(cells), categories=categories, cells=cells)
