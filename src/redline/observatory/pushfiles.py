"""Reading what ``push`` sends: attestation files (guard summaries are read by
``redline.records.guard_events.read_event_summaries``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from redline.errors import InputError
from redline.evidence.canonical import read_json_file


def read_envelope(path: Path) -> dict[str, Any]:
    data = read_json_file(path, "attestation")
    if not isinstance(data, dict) or "payload" not in data:
        raise InputError("not a DSSE envelope (no payload)", file=path)
    return data
