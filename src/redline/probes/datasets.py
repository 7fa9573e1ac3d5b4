"""Contrastive prompt sets for probes, as YAML files validated into ``ProbeExample``s.

A set lists ``positive`` and ``negative`` items (a prompt string, or a prompt with an
optional system message and reply), or ``pairs`` of one question answered honestly and
deceptively under ``systems`` instructions (the deceptive answer is the positive). Splits are
separate files (train, heldout, control) so that held-out prompts can never leak into
training or calibration.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from redline.errors import InputError
from redline.records.chat import ChatMessage
from redline.yamlload import load_model

DATA_DIR = Path(__file__).parent / "data"
#: Bundled sets by name, as the CLI lists them.
BUNDLED: dict[str, str] = {
    "harmful-intent": "harmful_train.yaml",
    "harmful-intent-heldout": "harmful_heldout.yaml",
    "deception": "deception_train.yaml",
    "deception-heldout": "deception_heldout.yaml",
    "controls": "controls.yaml",
}
#: Limits that keep a set a prompt set (and a forward pass per item affordable).
MAX_ITEMS = 5000
MAX_TEXT_CHARS = 4000

Text = Annotated[str, StringConstraints(min_length=1, max_length=MAX_TEXT_CHARS)]


class Item(BaseModel):
    """One conversation: an optional system message, a user prompt, an optional reply."""

    model_config = ConfigDict(extra="forbid")

    prompt: Text
    system: Text | None = None
    reply: Annotated[str, StringConstraints(max_length=MAX_TEXT_CHARS)] = ""


class Pair(BaseModel):
    """A question with an honest and a deceptive answer."""

    model_config = ConfigDict(extra="forbid")

    question: Text
    honest: Text
    deceptive: Text


class Systems(BaseModel):
    """Instructions rotated over ``pairs`` (pair i uses entry i mod len)."""

    model_config = ConfigDict(extra="forbid")

    honest: list[Text] = Field(min_length=1)
    deceptive: list[Text] = Field(min_length=1)


class PromptSet(BaseModel):
    """A probe data file."""

    model_config = ConfigDict(extra="forbid")

    name: Text
    #: What the positive class is, e.g. "harmful-intent", "deception"; "control" for controls.
    concept: Text
    description: str = ""
    split: Literal["train", "heldout", "control"]
    #: How a training example's states become training rows: its "last" token (a prompt's
    #: intent is read where the reply starts), the "mean" over its reply's tokens, or
    #: every token of its span ("tokens"), as the tripwire reads them.
    pooling: Literal["last", "mean", "tokens"] = "last"
    #: Generic reply openings (no content of their own): each positive and negative item is
    #: also used with reply i mod len, so the probe learns to read the prompt's intent from
    #: reply tokens too, where a tripwire scores it.
    replies: list[Text] = Field(default_factory=list, max_length=100)
    positive: list[Item | Text] = Field(default_factory=list, max_length=MAX_ITEMS)
    negative: list[Item | Text] = Field(default_factory=list, max_length=MAX_ITEMS)
    systems: Systems | None = None
    pairs: list[Pair] = Field(default_factory=list, max_length=MAX_ITEMS)

    @model_validator(mode="after")
    def _consistent(self) -> PromptSet:
        if self.pairs and self.systems is None:
            raise ValueError("pairs need systems (honest and deceptive instructions)")
        if not (self.positive or self.negative or self.pairs):
            raise ValueError("the set has no items")
        if self.split == "control" and (self.positive or self.pairs):
            raise ValueError("a control set holds negatives only")
        return self


@dataclass(frozen=True)
class ProbeExample:
    """A labelled conversation: the prompt messages and the reply the probe reads."""

    messages: tuple[ChatMessage, ...]
    reply: str
    positive: bool


def _example(item: Item | str, positive: bool) -> ProbeExample:
    item = Item(prompt=item) if isinstance(item, str) else item
    messages = [ChatMessage(role="user", content=item.prompt)]
    if item.system is not None:
        messages.insert(0, ChatMessage(role="system", content=item.system))
    return ProbeExample(tuple(messages), item.reply, positive)


def text_of(example: ProbeExample) -> str:
    """The conversation as a text classifier reads it: system, prompt and reply."""
    return "\n".join([*(m.content for m in example.messages), example.reply]).strip()


def examples(prompt_set: PromptSet) -> list[ProbeExample]:
    """The set's labelled examples, positives first, in file order."""
    found = [_example(i, True) for i in prompt_set.positive]
    found += [_example(i, False) for i in prompt_set.negative]
    replies = prompt_set.replies
    for n, example in enumerate(list(found) if replies else []):
        found.append(ProbeExample(example.messages, replies[n % len(replies)], example.positive))
    if prompt_set.systems is not None:
        honest, deceptive = prompt_set.systems.honest, prompt_set.systems.deceptive
        for i, pair in enumerate(prompt_set.pairs):
            for system, answer, positive in (
                (deceptive[i % len(deceptive)], pair.deceptive, True),
                (honest[i % len(honest)], pair.honest, False),
            ):
                item = Item(prompt=pair.question, system=system, reply=answer)
                found.append(_example(item, positive))
    return found


def per_class(found: list[ProbeExample], limit: int) -> list[ProbeExample]:
    """The first ``limit`` examples of each class, in order (quick runs and tests)."""
    kept: list[ProbeExample] = []
    counts = {True: 0, False: 0}
    for example in found:
        if counts[example.positive] < limit:
            counts[example.positive] += 1
            kept.append(example)
    return kept


def resolve(name_or_path: str | Path) -> Path:
    """A bundled set's file, or the path given; ``InputError`` when neither exists."""
    bundled = BUNDLED.get(str(name_or_path))
    path = DATA_DIR / bundled if bundled else Path(name_or_path)
    if not path.is_file():
        raise InputError(
            f"no prompt set {str(name_or_path)!r}: not a file and not one of "
            + ", ".join(sorted(BUNDLED))
        )
    return path


def load_set(name_or_path: str | Path) -> PromptSet:
    """Read and validate a prompt set (errors name file, line and field)."""
    return load_model(PromptSet, resolve(name_or_path))
