"""The semantic classifier: one-vs-rest logistic regression per lexicon category.

Each category's head separates its examples from everything else (benign examples and the
other categories), on static MiniLM vectors (``static_embeddings``) or, for comparison and
the optional cascade, on contextual MiniLM vectors. The logistic regression, its L2 choice by
out-of-fold log loss and the fold scheme are the refusal classifier's
(``redline.scoring.refusal``), so both classifiers train the same way. A head's output is a
probability calibrated on the training mix; the guard compares it with the tripwire's
threshold. Models are saved as ``.npz`` (never pickle) with the data digest and embedder id.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import yaml

from redline.errors import InputError
from redline.jsonlines import json_rows
from redline.lexicon import did_you_mean, load_lexicon
from redline.scoring.refusal import fit_logistic, log_loss, out_of_fold

DATA_DIR = Path(__file__).parent / "data"
TRAIN_PATH = DATA_DIR / "semantic-train.yaml"
VALIDATION_PATH = DATA_DIR / "semantic-validation.yaml"
BENIGN = "benign"
#: Bump when features or training change, so cached models from older code are not reused.
FORMAT_VERSION = "1"
#: A data file larger than this is refused (training holds every example in memory).
MAX_DATA_BYTES = 50_000_000
#: Longest example text accepted, in characters.
MAX_TEXT_CHARS = 20_000
#: Candidate L2 strengths (smaller than the refusal classifier's: the heads separate close
#: topics); the one with the lowest out-of-fold log loss is used per category.
LAMBDAS = (0.003, 0.01, 0.03, 0.1, 0.3)
#: Fewest examples of a category that training accepts (cross-validation needs some).
MIN_EXAMPLES_PER_LABEL = 5

FloatArray = npt.NDArray[np.float64]
Featurizer = Callable[[Sequence[str]], FloatArray]


@dataclass(frozen=True)
class Example:
    text: str
    label: str


def _check_label(label: object, known: set[str], path: Path, line: int | None) -> str:
    if not isinstance(label, str) or (label != BENIGN and label not in known):
        hint = did_you_mean(str(label), sorted(known | {BENIGN}))
        raise InputError(
            f"label {label!r} is not a lexicon category id or {BENIGN!r}{hint}",
            file=path, line=line, field="label",
        )
    return label


def _check_text(text: object, path: Path, line: int | None) -> str:
    if not isinstance(text, str) or not text.strip():
        raise InputError("must be a non-empty string", file=path, line=line, field="text")
    if len(text) > MAX_TEXT_CHARS:
        raise InputError(
            f"is {len(text)} characters long; the limit is {MAX_TEXT_CHARS}",
            file=path, line=line, field="text",
        )
    return text


def load_examples(path: Path) -> list[Example]:
    """Labelled texts from JSON Lines (``{"text", "label"}`` per line) or from YAML (a mapping
    of label → list of texts, the format of the built-in files)."""
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise InputError(f"cannot read the data file ({exc.strerror})", file=path) from None
    if size > MAX_DATA_BYTES:
        raise InputError(f"is {size} bytes; the limit is {MAX_DATA_BYTES}", file=path)
    raw = path.read_text(encoding="utf-8")
    known = {c.id for c in load_lexicon().categories}
    examples: list[Example] = []
    if path.suffix.lower() in (".yaml", ".yml"):
        try:
            data = yaml.safe_load(raw)
        except yaml.YAMLError as exc:
            raise InputError(f"invalid YAML: {exc}", file=path) from None
        if not isinstance(data, dict):
            raise InputError("expected a mapping of label to a list of texts", file=path)
        for label, texts in data.items():
            _check_label(label, known, path, None)
            if not isinstance(texts, list):
                raise InputError("expected a list of texts", file=path, field=str(label))
            examples.extend(Example(_check_text(t, path, None), label) for t in texts)
    else:
        for lineno, row in json_rows(path, raw):
            text = _check_text(row.get("text"), path, lineno)
            examples.append(Example(text, _check_label(row.get("label"), known, path, lineno)))
    if not examples:
        raise InputError("no examples", file=path)
    return examples


def data_digest(examples: Sequence[Example]) -> str:
    """sha256 over the examples in order: the model's identity in the data."""
    digest = hashlib.sha256()
    for e in examples:
        digest.update(json.dumps([e.label, e.text]).encode())
    return digest.hexdigest()


@dataclass(frozen=True)
class SemanticModel:
    """Per-category logistic-regression heads over one kind of text vector."""

    categories: tuple[str, ...]
    #: Shape (len(categories), dimension + 1); the last column is the intercept.
    weights: FloatArray
    l2: tuple[float, ...]
    embedder_id: str
    data_digest: str
    n_examples: int

    def predict(self, x: FloatArray) -> FloatArray:
        """P(category) per row of ``x`` and per category, shape (len(x), len(categories))."""
        z = x @ self.weights[:, :-1].T + self.weights[:, -1]
        result: FloatArray = 0.5 * (1.0 + np.tanh(0.5 * z))
        return result

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp.npz")
        np.savez(
            tmp, format=np.array(FORMAT_VERSION), categories=np.array(self.categories),
            weights=self.weights, l2=np.array(self.l2), embedder_id=np.array(self.embedder_id),
            data_digest=np.array(self.data_digest), n_examples=np.array(self.n_examples),
        )
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path) -> SemanticModel:
        """Read a saved model; anything but a well-formed artefact is an ``InputError``."""
        try:
            with np.load(path, allow_pickle=False) as data:
                if str(data["format"]) != FORMAT_VERSION:
                    raise InputError(
                        f"model format {data['format']} is not {FORMAT_VERSION}; retrain it",
                        file=path,
                    )
                categories = tuple(str(c) for c in data["categories"])
                weights = data["weights"].astype(np.float64)
                model = cls(
                    categories=categories, weights=weights,
                    l2=tuple(float(v) for v in data["l2"]),
                    embedder_id=str(data["embedder_id"]),
                    data_digest=str(data["data_digest"]), n_examples=int(data["n_examples"]),
                )
        except (OSError, KeyError, ValueError) as exc:
            raise InputError(f"not a semantic model artefact ({exc})", file=path) from None
        if weights.ndim != 2 or weights.shape[0] != len(categories):
            raise InputError("weights do not match the category list", file=path)
        return model


def train(examples: Sequence[Example], featurize: Featurizer, embedder_id: str) -> SemanticModel:
    """Fit one head per category present in ``examples`` (every label except benign)."""
    labels = sorted({e.label for e in examples} - {BENIGN})
    if not labels:
        raise InputError("the data has no harmful categories, only benign examples")
    counts = {label: sum(e.label == label for e in examples) for label in labels}
    few = {label: n for label, n in counts.items() if n < MIN_EXAMPLES_PER_LABEL}
    if few:
        raise InputError(
            f"too few examples to train (need {MIN_EXAMPLES_PER_LABEL} per label): {few}"
        )
    x = featurize([e.text for e in examples])
    heads: list[FloatArray] = []
    l2: list[float] = []
    for label in labels:
        y = np.array([e.label == label for e in examples], dtype=np.float64)
        oof = {lam: out_of_fold(x, y, lam) for lam in LAMBDAS}
        lam = min(LAMBDAS, key=lambda value: log_loss(oof[value], y))
        heads.append(fit_logistic(x, y, lam))
        l2.append(lam)
    return SemanticModel(
        categories=tuple(labels), weights=np.stack(heads), l2=tuple(l2),
        embedder_id=embedder_id, data_digest=data_digest(examples), n_examples=len(examples),
    )
