"""Reading what ``push`` sends: attestation files and JSON Lines of guard summaries."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError

from redline.errors import InputError
from redline.evidence.canonical import read_json_file
from redline.records.guard_events import GuardEventSummary


def read_envelope(path: Path) -> dict[str, Any]:
    data = read_json_file(path, "attestation")
    if not isinstance(data, dict) or "payload" not in data:
        raise InputError("not a DSSE envelope (no payload)", file=path)
    return data


def read_summaries(path: Path) -> list[GuardEventSummary]:
    out = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            out.append(GuardEventSummary.model_validate_json(line))
        except ValidationError as exc:
            err = exc.errors()[0]
            raise InputError(err["msg"], file=path, line=number,
                             field=".".join(map(str, err["loc"]))) from None
    return out
