"""The ``external`` detector: a Llama Guard-style classifier behind an OpenAI-compatible API.

The prompt lists the tripwire's categories (names and descriptions from the lexicon) as
``S1``, ``S2``… and the conversation, and asks for Llama Guard's verdict format: ``safe``, or
``unsafe`` and a line of violated codes. Parsing tolerates case, whitespace and lexicon ids
in place of codes. A verdict that cannot be parsed, or ``unsafe`` without a known code,
scores ``UNPARSEABLE_SCORE`` (1.0, i.e. fail closed: a red-line guard should not wave
content through because its classifier babbled); ``options["external_unparseable_score"]``
overrides it. An unreachable or stalled classifier raises a ``TargetError`` naming the URL
within the configured timeout; the guard decides what to do then.

Options: ``external_url`` (base URL, e.g. ``http://127.0.0.1:8000/v1``), ``external_model``,
``external_api_key``, ``external_timeout_s`` (per attempt), ``external_retries``.
"""

from __future__ import annotations

import json
import re
from typing import Any

from redline.errors import InputError
from redline.guard.detectors.base import DetectorResources, Finding, Inspected, detectors
from redline.lexicon import load_lexicon
from redline.models.errors import TargetTimeoutError
from redline.models.openai_http import OpenAITarget
from redline.models.registry import TargetOptions
from redline.policy.model import Tripwire
from redline.records.chat import ChatMessage, GenerateConfig

NAME = "external"
DEFAULT_TIMEOUT_S = 10.0
DEFAULT_RETRIES = 1
#: Score when the verdict cannot be parsed: fail closed (see the module docstring).
UNPARSEABLE_SCORE = 1.0
#: Characters of each conversation turn put in the prompt.
MAX_TURN_CHARS = 8000
#: Earlier user turns included as context.
MAX_CONTEXT_TURNS = 4
#: Tokens the classifier may answer with (a verdict is two short lines).
MAX_VERDICT_TOKENS = 32
_EXCERPT_CHARS = 80
#: Markers of the prompt's sections; neutralised inside quoted text so it cannot close them.
_MARKER = re.compile(r"<\s*(BEGIN|END)\s+(UNSAFE CONTENT CATEGORIES|CONVERSATION)", re.I)
_CODE = re.compile(r"\bS(\d{1,3})\b", re.I)

PROMPT = """Task: Check if there is unsafe content in '{role}' messages in conversations \
according to our safety policy with the below categories.

<BEGIN UNSAFE CONTENT CATEGORIES>
{categories}
<END UNSAFE CONTENT CATEGORIES>

<BEGIN CONVERSATION>

{conversation}

<END CONVERSATION>

Provide your safety assessment for ONLY THE LAST {role} message in the above conversation:
 - First line must read 'safe' or 'unsafe'.
 - If unsafe, a second line must include a comma-separated list of violated categories."""


def _quote(text: str) -> str:
    return _MARKER.sub(lambda m: f"[{m.group(1)} {m.group(2)}", text[:MAX_TURN_CHARS])


def render_prompt(item: Inspected, categories: list[str]) -> str:
    """The classifier prompt for one item; category ``i`` is code ``S{i+1}``."""
    lexicon = load_lexicon()
    listed = "\n".join(
        f"S{i}: {lexicon.get(c).name}. {lexicon.get(c).description}"
        for i, c in enumerate(categories, start=1)
    )
    turns = [f"User: {_quote(t)}" for t in item.context[-MAX_CONTEXT_TURNS:]]
    role = "Agent" if item.surface in ("output", "tool_call") else "User"
    if item.surface == "tool_call":
        args = json.dumps(item.tool_args or {}, ensure_ascii=False, sort_keys=True)
        body = f"(calls tool {item.tool_name!r} with arguments {args}) {item.text}".strip()
    elif item.surface == "tool_result":
        body = f"(result of tool {item.tool_name or 'unknown'!r}) {item.text}"
    else:
        body = item.text
    turns.append(f"{role}: {_quote(body)}")
    return PROMPT.format(role=role, categories=listed, conversation="\n\n".join(turns))


def parse_verdict(reply: str, categories: list[str]) -> tuple[dict[str, float] | None, str]:
    """Category scores from a verdict, or None when it cannot be parsed; plus an explanation."""
    lines = [line.strip() for line in reply.strip().splitlines() if line.strip()]
    head = lines[0].lower().rstrip(".") if lines else ""
    excerpt = reply.strip()[:_EXCERPT_CHARS]
    if head == "safe":
        return dict.fromkeys(categories, 0.0), "classifier says safe"
    if not head.startswith("unsafe"):
        return None, f"unparseable verdict {excerpt!r}"
    rest = " ".join([head[len("unsafe"):], *lines[1:]])
    named: set[str] = set()
    for code in _CODE.findall(rest):
        index = int(code) - 1
        if 0 <= index < len(categories):
            named.add(categories[index])
    upper = rest.upper()
    named.update(c for c in categories if c.upper() in upper)
    if not named:
        return None, f"unsafe verdict without a known category code: {excerpt!r}"
    return {c: 1.0 if c in named else 0.0 for c in categories}, "classifier says unsafe: " + (
        ", ".join(sorted(named))
    )


def _number(options: dict[str, Any], key: str, default: float) -> float:
    value = options.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise InputError(f"option {key} must be a non-negative number, not {value!r}", field=key)
    return float(value)


def _client(options: dict[str, Any]) -> OpenAITarget:
    url = options.get("external_url")
    if not isinstance(url, str) or not url:
        raise InputError(
            "the external detector needs option external_url (an OpenAI-compatible base URL, "
            "e.g. http://127.0.0.1:8000/v1)", field="external_url",
        )
    timeout = _number(options, "external_timeout_s", DEFAULT_TIMEOUT_S) or DEFAULT_TIMEOUT_S
    retries = int(_number(options, "external_retries", DEFAULT_RETRIES))
    return OpenAITarget(
        url.rstrip("/"),
        model=str(options.get("external_model") or "default"),
        api_key=options.get("external_api_key") or None,
        options=TargetOptions(
            connect_timeout_s=timeout, read_timeout_s=timeout, max_retries=retries,
            extra={"backoff_base_s": 0.1, "backoff_cap_s": 1.0},
        ),
    )


class ExternalDetector:
    """Asks the external classifier about the tripwire's categories, one item per request."""

    name = NAME

    def __init__(self, tripwire: Tripwire, client: OpenAITarget, unparseable: float) -> None:
        lexicon = load_lexicon()
        for category in tripwire.categories:
            lexicon.get(category)  # an unknown id fails here, at start-up
        self.tripwire = tripwire
        self.client = client
        self.unparseable = unparseable
        self._config = GenerateConfig(temperature=0.0, max_tokens=MAX_VERDICT_TOKENS)

    async def detect(self, item: Inspected) -> Finding:
        categories = list(self.tripwire.categories)
        prompt = render_prompt(item, categories)
        try:
            output = await self.client.generate([ChatMessage(role="user", content=prompt)],
                                                self._config)
        except TimeoutError:
            raise TargetTimeoutError(
                f"external classifier {self.client.info.uri} did not answer in time"
            ) from None
        scores, detail = parse_verdict(output.text or "", categories)
        if scores is None:
            return Finding(NAME, self.unparseable, dict.fromkeys(categories, self.unparseable),
                           detail=f"{detail}; scored {self.unparseable:g} (fail closed)")
        return Finding(NAME, max(scores.values(), default=0.0), scores, detail=detail)


@detectors.register(NAME)
def external_detector(tripwire: Tripwire, resources: DetectorResources) -> ExternalDetector:
    """A Llama Guard-style classifier model behind any OpenAI-compatible endpoint."""
    options = resources.options
    client = resources.shared(
        f"external.client:{options.get('external_url')}:{options.get('external_model')}",
        lambda: _client(options),
    )
    unparseable = _number(options, "external_unparseable_score", UNPARSEABLE_SCORE)
    if unparseable > 1:
        raise InputError("option external_unparseable_score must be in [0, 1]",
                         field="external_unparseable_score")
    return ExternalDetector(tripwire, client, unparseable)
