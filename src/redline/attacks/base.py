"""The ``Attack`` protocol: how a case reaches the target.

``direct`` sends the case as written. Converters, multi-turn escalation and attacker-model
refinement implement the same protocol and record every step they take in the transcript, so
a reviewer can replay them.

Converters are pure text transforms of the last user message. Each is registered twice: in
``converter_registry`` (so it can be chained) and in ``attacks`` (so ``--attack base64``
works). A chained name such as ``base64+roleplay`` applies them left to right and is itself
the attack name that is logged.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol, runtime_checkable

from redline.errors import InputError
from redline.models.target import Target
from redline.records.chat import ChatMessage, GenerateConfig, ModelOutput, ToolDefinition, Usage
from redline.registry import Registry
from redline.scoring.refusal import default_classifier


@dataclass
class AttackResult:
    """The conversation the attack ended with and the reply that is scored."""

    messages: list[ChatMessage]
    output: ModelOutput
    usage: Usage = field(default_factory=Usage)
    #: What the attack did (transforms applied, turns, refinements), for the log.
    notes: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Attack(Protocol):
    name: str

    async def run(
        self,
        messages: Sequence[ChatMessage],
        target: Target,
        config: GenerateConfig,
        tools: Sequence[ToolDefinition] = (),
        goal: str | None = None,
    ) -> AttackResult: ...


AttackFactory = Callable[..., Attack]

attacks: Registry[AttackFactory] = Registry("attack")


@attacks.register("direct")
class Direct:
    """Send the case unchanged: the baseline every other attack is compared with."""

    name = "direct"

    async def run(
        self,
        messages: Sequence[ChatMessage],
        target: Target,
        config: GenerateConfig,
        tools: Sequence[ToolDefinition] = (),
        goal: str | None = None,
    ) -> AttackResult:
        output = await target.generate(messages, config, tools)
        return AttackResult(messages=list(messages), output=output, usage=output.usage)


def build_attack(name: str, options: dict[str, Any] | None = None) -> Attack:
    """Instantiate an attack, passing only the run's attack options its factory accepts
    (e.g. ``attacker`` and ``judge`` URIs for iterative attacks). A name joined with ``+``
    chains converters left to right."""
    if CHAIN_SEP in name:
        return chain_attack(name)
    factory = attacks.get(name)
    params = inspect.signature(factory).parameters
    takes_all = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    kwargs = {k: v for k, v in (options or {}).items() if takes_all or k in params}
    return factory(**kwargs)


# --- helpers shared by attacks ---------------------------------------------------------------


def last_user_index(messages: Sequence[ChatMessage]) -> int | None:
    """Position of the last user message: the one attacks rewrite."""
    for i in range(len(messages) - 1, -1, -1):
        if messages[i].role == "user":
            return i
    return None


def request_of(messages: Sequence[ChatMessage], goal: str | None) -> str:
    """The concrete request: the last user message, or the goal when there is none."""
    i = last_user_index(messages)
    return messages[i].content if i is not None else goal or ""


def replace_at(
    messages: Sequence[ChatMessage], index: int, message: ChatMessage
) -> list[ChatMessage]:
    """A copy of the conversation with one message swapped (system and tool turns kept)."""
    out = list(messages)
    out[index] = message
    return out


def derive_seed(seed: int | None, *parts: object) -> int | None:
    """A seed for an attack's own sampling, derived from the sample's seed and the step, so
    that a rerun with the same seed makes the same choices; None stays None (greedy)."""
    if seed is None:
        return None
    material = ":".join(map(str, (seed, *parts))).encode()
    return int.from_bytes(hashlib.sha256(material).digest()[:4], "big") >> 1


#: Sampling temperature of attacker models when the sample is seeded (else greedy).
ATTACKER_TEMPERATURE = 0.8


def helper_config(config: GenerateConfig, max_tokens: int, *step: object) -> GenerateConfig:
    """Settings for an attacker call: sampled with a seed derived from the sample's seed and
    the step when the sample is seeded, greedy otherwise, so every run is reproducible."""
    seed = derive_seed(config.seed, *step)
    return GenerateConfig(
        max_tokens=max_tokens,
        temperature=ATTACKER_TEMPERATURE if seed is not None else 0.0,
        seed=seed,
    )


#: Words shorter than this carry no topic (articles, pronouns, short verbs).
MIN_TOPIC_WORD = 4
#: Leading characters compared, a crude stem ("encrypts" and "encryption" match).
STEM_CHARS = 6
_STOPWORDS = frozenset({
    "that", "this", "with", "from", "into", "your", "their", "there", "them", "they", "what",
    "which", "while", "where", "when", "would", "could", "should", "about", "have", "been",
    "being", "were", "will", "just", "than", "then", "also", "some", "very", "more", "most",
    "every", "each", "such", "only", "over", "under", "after", "before", "please", "write",
    "give", "tell", "make", "explain", "describe", "show",
})


def topic_stems(text: str) -> set[str]:
    """Stems of the words that say what a text is about."""
    words = re.findall(r"[a-z]+", text.lower())
    return {w[:STEM_CHARS] for w in words if len(w) >= MIN_TOPIC_WORD and w not in _STOPWORDS}


def topic_overlap(text: str, reference: str) -> float:
    """Share of ``reference``'s topic stems that ``text`` contains (1.0 if it has none)."""
    ref = topic_stems(reference)
    return len(ref & topic_stems(text)) / len(ref) if ref else 1.0


@dataclass(frozen=True)
class RefusalReading:
    """The refusal classifier's view of one reply."""

    p_refusal: float
    refused: bool


async def read_refusals(texts: Sequence[str]) -> list[RefusalReading]:
    """P(refusal) and the classifier's own cut for each reply; an empty reply is a refusal
    (it gives nothing toward the goal)."""
    classifier = default_classifier()
    threshold = await asyncio.to_thread(lambda: classifier.threshold)
    filled = [t for t in texts if t.strip()]
    probs = iter((await classifier.apredict_proba(filled)).tolist() if filled else [])
    readings = []
    for text in texts:
        p = float(next(probs)) if text.strip() else 1.0
        readings.append(RefusalReading(p_refusal=p, refused=p >= threshold))
    return readings


# --- converters ------------------------------------------------------------------------------

#: A single-turn transform of the request text.
ConvertFn = Callable[[str], str]

converter_registry: Registry[ConvertFn] = Registry("converter")

#: Joins converter names into one attack.
CHAIN_SEP = "+"


class ConvertedAttack:
    """Rewrite the last user message with converters applied in order, then send it."""

    def __init__(self, names: Sequence[str]) -> None:
        if not names:
            raise ValueError("a converter chain needs at least one converter")
        self.steps = [(n, converter_registry.get(n)) for n in names]
        self.name = CHAIN_SEP.join(names)

    def convert(self, text: str) -> str:
        for _, fn in self.steps:
            text = fn(text)
        return text

    async def run(
        self,
        messages: Sequence[ChatMessage],
        target: Target,
        config: GenerateConfig,
        tools: Sequence[ToolDefinition] = (),
        goal: str | None = None,
    ) -> AttackResult:
        index = last_user_index(messages)
        notes: dict[str, Any] = {"attack": self.name, "transforms": [n for n, _ in self.steps]}
        sent = list(messages)
        if index is None:
            notes |= {"transforms": [], "skipped": "no user message to convert"}
        else:
            original = messages[index].content
            converted = ChatMessage(
                role="user",
                content=self.convert(original),
                metadata={"attack": self.name, "original": original},
            )
            sent = replace_at(messages, index, converted)
        output = await target.generate(sent, config, tools)
        return AttackResult(messages=sent, output=output, usage=output.usage, notes=notes)


def converter(name: str) -> Callable[[ConvertFn], ConvertFn]:
    """Decorator: register a text transform as a converter and as the attack of that name."""

    def decorate(fn: ConvertFn) -> ConvertFn:
        converter_registry.add(name, fn)
        attacks.add(name, partial(ConvertedAttack, (name,)))
        return fn

    return decorate


def chain_attack(name: str) -> ConvertedAttack:
    """``a+b+c``: converters a, then b, then c. Only converters chain: an attack that holds a
    conversation (escalation, pair) has no single text to hand on."""
    parts = name.split(CHAIN_SEP)
    known = converter_registry.names()
    for part in parts:
        if part not in converter_registry:
            what = "is an attack but not a converter" if part in attacks else "is unknown"
            raise InputError(
                f"attack {name!r}: {part!r} {what}; only converters can be chained with "
                f"{CHAIN_SEP!r} (converters: {', '.join(known)})"
            )
    return ConvertedAttack(parts)
