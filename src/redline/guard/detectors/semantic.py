"""The ``semantic`` detector: P(category) from a classifier on distilled MiniLM vectors.

One static-embedding check costs well under a millisecond of CPU (see
``bench/guard_detectors.py``), so it runs inline on the event loop. The text is scored in its
original form and in its de-obfuscated forms (``redline.guard.normalize``); the score of a
category is its highest probability across forms and, for long texts, across windows.

Optional cascade (``options["semantic_cascade"]``: ``true`` or ``[low, high]``): items whose
static score falls in the uncertain band are re-scored by a head on full contextual MiniLM,
in a worker thread. Off by default: it costs 4–12 ms per re-scored item.

Options: ``semantic_model`` (path of a model written by ``redline guard train``; default: the
built-in model, trained on first use and cached under ``cache_dir()/"scorers"``).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from redline import paths
from redline.errors import InputError
from redline.guard.detectors.base import DetectorResources, Finding, Inspected, detectors
from redline.guard.normalize import variants
from redline.guard.semantic_model import (
    FORMAT_VERSION,
    TRAIN_PATH,
    FloatArray,
    SemanticModel,
    load_examples,
    train,
)
from redline.guard.static_embeddings import StaticEmbedder, static_embedder
from redline.policy.model import Tripwire
from redline.scoring.embeddings import Embedder

NAME = "semantic"
#: Default uncertain band of the cascade, on the static probability.
CASCADE_BAND = (0.2, 0.8)
#: Forms of one text scored: original, de-obfuscated, rot13, decoded segments.
MAX_SCORED_VARIANTS = 4
#: The de-obfuscation chain, most decoded last; only its last present form is scored.
_CHAIN = ("folded", "spacing", "leet")
SHARED_KEY = "semantic.scorer"
#: Texts whose scores are remembered (per guard), so tripwires sharing an item share work.
RECENT_TEXTS = 64


def _cache_path(kind: str, train_path: Path, embedder_id: str) -> Path:
    digest = hashlib.sha256(train_path.read_bytes()).hexdigest()
    key = hashlib.sha256(f"{digest}\n{embedder_id}\n{FORMAT_VERSION}".encode()).hexdigest()
    return paths.cache_dir() / "scorers" / f"semantic-{kind}-{key[:24]}.npz"


def _trained(kind: str, featurize: Any, embedder_id: str) -> SemanticModel:
    """The built-in model for one kind of vector: from the cache, or trained and cached."""
    path = _cache_path(kind, TRAIN_PATH, embedder_id)
    if path.is_file():
        try:
            model = SemanticModel.load(path)
            if model.embedder_id == embedder_id:
                return model
        except InputError:
            pass  # a corrupt cache file is retrained, not trusted
    model = train(load_examples(TRAIN_PATH), featurize, embedder_id)
    model.save(path)
    return model


def static_features(static: StaticEmbedder, texts: Sequence[str]) -> FloatArray:
    return static.embed(texts).astype(np.float64)


def contextual_features(embedder: Embedder, texts: Sequence[str]) -> FloatArray:
    return embedder.embed(texts).astype(np.float64)


def builtin_static_model(static: StaticEmbedder) -> SemanticModel:
    return _trained("static", lambda t: static_features(static, t), static.id)


def builtin_contextual_model(embedder: Embedder) -> SemanticModel:
    return _trained("contextual", lambda t: contextual_features(embedder, t), embedder.id)


def _band(value: Any) -> tuple[float, float] | None:
    if value in (None, False):
        return None
    if value is True:
        return CASCADE_BAND
    if (
        isinstance(value, list | tuple) and len(value) == 2
        and all(isinstance(v, int | float) for v in value) and 0 <= value[0] < value[1] <= 1
    ):
        return float(value[0]), float(value[1])
    raise InputError(
        f"option semantic_cascade must be true or [low, high] in [0, 1], not {value!r}"
    )


@dataclass(frozen=True)
class Scored:
    """One text's forms, P(category) per form (rows) and category (columns), and per
    category the best probability and the first form that reached it. The per-category
    figures are plain floats: each semantic tripwire reads a few of them, cheaper than
    slicing the array again for every tripwire."""

    forms: list[tuple[str, str]]
    probs: FloatArray
    best: list[float]
    best_form: list[int]

    @classmethod
    def of(cls, forms: list[tuple[str, str]], probs: FloatArray) -> Scored:
        return cls(forms, probs, probs.max(axis=0).tolist(), probs.argmax(axis=0).tolist())


@dataclass
class SemanticScorer:
    """The static model, and the contextual one when the cascade is on; shared per guard."""

    static: StaticEmbedder
    model: SemanticModel
    band: tuple[float, float] | None = None
    embedder: Embedder | None = None
    contextual: SemanticModel | None = None

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._recent: OrderedDict[str, Scored] = OrderedDict()

    def score_text(self, text: str) -> Scored:
        """The forms of ``text`` and P(category) per form, remembered for the last few texts:
        every semantic tripwire on a surface scores the same item, so it is embedded once."""
        hit = self._recent.get(text)
        if hit is not None:
            self._recent.move_to_end(text)
            return hit
        forms = scored_forms(text)
        result = Scored.of(forms, self.predict([t for _, t in forms]))
        self._recent[text] = result
        if len(self._recent) > RECENT_TEXTS:
            self._recent.popitem(last=False)
        return result

    def predict(self, texts: Sequence[str]) -> FloatArray:
        """P(category) per text (rows) and category (columns): the maximum over the whole
        text and its windows."""
        rows, owner = self.static.embed_windows(texts)
        probs = self.model.predict(rows.astype(np.float64))
        out = np.zeros((len(texts), len(self.model.categories)))
        np.maximum.at(out, np.asarray(owner), probs)
        return out

    def predict_contextual(self, texts: Sequence[str]) -> FloatArray:
        assert self.embedder is not None and self.contextual is not None
        with self._lock:
            return self.contextual.predict(contextual_features(self.embedder, texts))


def build_scorer(options: dict[str, Any]) -> SemanticScorer:
    static = static_embedder()
    model_path = options.get("semantic_model")
    if model_path:
        model = SemanticModel.load(Path(model_path))
        if model.embedder_id != static.id:
            raise InputError(
                f"the model was trained on {model.embedder_id!r}, but this installation "
                f"embeds with {static.id!r}; retrain it with `redline guard train`",
                file=model_path,
            )
    else:
        model = builtin_static_model(static)
    band = _band(options.get("semantic_cascade"))
    if band is None:
        return SemanticScorer(static, model)
    embedder = Embedder()
    return SemanticScorer(static, model, band, embedder, builtin_contextual_model(embedder))


def scored_forms(text: str) -> list[tuple[str, str]]:
    """(kind, text) of the forms scored: the original, the most de-obfuscated, the decoded."""
    forms = variants(text)
    chain = [v for v in forms if v.kind in _CHAIN][-1:]
    rest = [v for v in forms if v.kind not in _CHAIN and v.kind != "original"]
    picked = [forms[0], *chain, *rest][:MAX_SCORED_VARIANTS]
    return [(v.kind, v.text) for v in picked]


def _item_text(item: Inspected) -> str:
    if item.surface == "tool_call" and item.tool_name is not None:
        args = json.dumps(item.tool_args or {}, ensure_ascii=False, sort_keys=True)
        return f"{item.tool_name} {args} {item.text}".strip()
    return item.text


class SemanticDetector:
    """Scores the tripwire's categories; the finding's score is the highest of them."""

    name = NAME

    def __init__(self, tripwire: Tripwire, scorer: SemanticScorer) -> None:
        missing = [c for c in tripwire.categories if c not in scorer.model.categories]
        if missing or not tripwire.categories:
            raise InputError(
                f"tripwire {tripwire.id!r}: the semantic model has no classifier for "
                f"{', '.join(missing) or 'any category'}; it knows "
                f"{', '.join(scorer.model.categories)}. Train one with `redline guard train`."
            )
        contextual = scorer.contextual
        if contextual is not None and not set(tripwire.categories) <= set(contextual.categories):
            raise InputError(
                f"tripwire {tripwire.id!r}: the cascade's contextual model has no classifier "
                f"for all of {', '.join(tripwire.categories)}; turn semantic_cascade off"
            )
        self.tripwire = tripwire
        self.scorer = scorer
        self._columns = [scorer.model.categories.index(c) for c in tripwire.categories]
        self._contextual_columns = ([contextual.categories.index(c) for c in tripwire.categories]
                                    if contextual is not None else [])

    async def detect(self, item: Inspected) -> Finding:
        text = _item_text(item)
        if not text.strip():
            return Finding(NAME, 0.0, dict.fromkeys(self.tripwire.categories, 0.0),
                           detail="empty text")
        scored = self.scorer.score_text(text)
        how, columns = "static", self._columns
        band = self.scorer.band
        if band is not None and band[0] <= max(scored.best[i] for i in columns) < band[1]:
            texts = [t for _, t in scored.forms]
            full = await asyncio.to_thread(self.scorer.predict_contextual, texts)
            scored = Scored.of(scored.forms, full)
            how, columns = "contextual", self._contextual_columns
        scores = {c: scored.best[i] for c, i in zip(self.tripwire.categories, columns,
                                                      strict=True)}
        top = max(scores.values())
        # The first form (row) that reached the top score, as a row-major arg-max finds it.
        top_row = min(scored.best_form[i] for i in columns if scored.best[i] == top)
        detail = ", ".join(f"P({c})={p:.2f}" for c, p in scores.items())
        return Finding(
            detector=NAME, score=top, categories=scores,
            detail=f"{detail} ({how}, {scored.forms[top_row][0]} text)",
        )


@detectors.register(NAME)
def semantic_detector(tripwire: Tripwire, resources: DetectorResources) -> SemanticDetector:
    """A classifier on distilled MiniLM vectors, trained on examples written for redline."""
    scorer = resources.shared(SHARED_KEY, lambda: build_scorer(resources.options))
    return SemanticDetector(tripwire, scorer)
