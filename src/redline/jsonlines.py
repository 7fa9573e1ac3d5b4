"""Reading JSON Lines files a user wrote: one object per line, errors naming file and line.

Lines are split at ``\\n`` only, not with ``str.splitlines``: a JSON string may hold U+2028,
U+0085 and other characters that ``splitlines`` treats as line breaks.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from redline.errors import InputError


def json_rows(path: Path, text: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line number, object)`` for each non-blank line of ``text`` read from ``path``."""
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"invalid JSON: {exc.msg} (column {exc.colno})", file=path,
                             line=number) from None
        if not isinstance(row, dict):
            raise InputError("expected a JSON object", file=path, line=number)
        yield number, row
