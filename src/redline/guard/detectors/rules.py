"""The ``rules`` detector: a tripwire's regular expressions and tool-name globs.

Text is searched in every normalised variant (``redline.guard.normalize``), so homoglyphs,
zero-width characters, leetspeak, letter spacing, base64 and rot13 do not hide a match, and
match spans map back to the original text for redaction. A tool call matches when its name
matches one of the tripwire's globs and, if the tripwire also has patterns, its arguments
(as JSON, and each string value normalised) match one of them.

Python's ``re`` has no time limit, so a pattern with nested quantifiers can backtrack for a
long time on a crafted input. Each variant is therefore searched only up to
``MAX_INSPECT_CHARS`` characters: that bounds polynomial backtracking (``.*a.*b``) but not
an exponential pattern (``(a+)+b``), which a policy author must not write.
"""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Iterator
from typing import Any

from redline.guard.detectors.base import DetectorResources, Finding, Inspected, detectors
from redline.guard.normalize import variants
from redline.policy.model import Tripwire

NAME = "rules"
#: Characters of each variant (and of serialised tool arguments) that patterns search.
MAX_INSPECT_CHARS = 32_768
#: String values of tool arguments normalised one by one; more are covered by the JSON only.
MAX_ARGUMENT_STRINGS = 64
#: Spans reported per finding (enough to redact; a flood of matches is not all listed).
MAX_SPANS = 32


def _strings(value: Any) -> Iterator[str]:
    """String values nested anywhere in parsed JSON, depth first."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _strings(item)


class RulesDetector:
    """Regexes over normalised text; tool-name globs and argument patterns for tool calls."""

    name = NAME

    def __init__(self, tripwire: Tripwire) -> None:
        self.tripwire = tripwire
        self._patterns = [re.compile(p, re.IGNORECASE) for p in tripwire.patterns]
        self._globs = [g.lower() for g in tripwire.tools]

    def _finding(self, matched: bool, detail: str, spans: list[tuple[int, int]]) -> Finding:
        score = 1.0 if matched else 0.0
        categories = dict.fromkeys(self.tripwire.categories, score)
        return Finding(
            detector=NAME, score=score, categories=categories,
            spans=tuple(sorted(set(spans))[:MAX_SPANS]), detail=detail,
        )

    def match_text(self, text: str) -> tuple[list[tuple[int, int]], list[str]]:
        """Spans of the original text that match, and which pattern matched in which form."""
        spans: list[tuple[int, int]] = []
        hits: list[str] = []
        for variant in variants(text):
            searched = variant.text[:MAX_INSPECT_CHARS]
            for pattern in self._patterns:
                found = False
                for match in pattern.finditer(searched):
                    found = True
                    spans.append(variant.original_span(match.start(), match.end()))
                    if len(spans) >= MAX_SPANS:
                        break
                if found:
                    hits.append(f"{pattern.pattern!r} in {variant.kind} text")
        return spans, hits

    def _tool_matches(self, tool_name: str | None) -> str | None:
        """The glob the tool's name matches, or None."""
        if tool_name is None:
            return None
        lowered = tool_name.lower()
        return next((g for g in self._globs if fnmatch.fnmatchcase(lowered, g)), None)

    def _arguments_match(self, args: dict[str, Any] | None) -> list[str]:
        if not args:
            return []
        serialised = json.dumps(args, ensure_ascii=False, sort_keys=True)
        texts = [serialised, *list(_strings(args))[:MAX_ARGUMENT_STRINGS]]
        hits: list[str] = []
        for text in texts:
            hits.extend(self.match_text(text)[1])
            if hits:
                break
        return hits

    def _detect_tool(self, item: Inspected) -> Finding:
        glob = self._tool_matches(item.tool_name) if self._globs else "*"
        if glob is None:
            return self._finding(False, f"tool {item.tool_name!r} matches no watched tool", [])
        named = f"tool {item.tool_name!r} matches {glob!r}"
        if not self._patterns:
            return self._finding(True, named, [])
        hits = self._arguments_match(item.tool_args)
        spans: list[tuple[int, int]] = []
        if item.text:
            text_spans, text_hits = self.match_text(item.text)
            spans, hits = text_spans, hits + text_hits
        if not hits:
            return self._finding(False, f"{named}; no argument matches a pattern", [])
        return self._finding(True, f"{named}; arguments match " + ", ".join(hits[:4]), spans)

    async def detect(self, item: Inspected) -> Finding:
        if item.surface == "tool_call" or (item.tool_name is not None and self._globs):
            return self._detect_tool(item)
        if not self._patterns:
            return self._finding(False, "no patterns for text", [])
        spans, hits = self.match_text(item.text)
        detail = "matched " + ", ".join(hits[:4]) if hits else "no pattern matched"
        return self._finding(bool(hits), detail, spans)


@detectors.register(NAME)
def rules_detector(tripwire: Tripwire, resources: DetectorResources) -> RulesDetector:
    """Regular expressions over de-obfuscated text; tool-name globs and argument patterns."""
    return RulesDetector(tripwire)
