"""Static token vectors distilled from MiniLM, so a guard check costs microseconds.

Contextual MiniLM costs 4–12 ms of CPU per text on two cores, too much for a proxy that must
add under 5 ms at 500 requests/s. Following model2vec, every vocabulary token is run through
MiniLM once, as a one-token sentence (``[CLS] token [SEP]``, mean-pooled), and the output
vectors are kept. A text's vector is then the mean of its tokens' vectors, centred on the
vocabulary mean (which removes the component every one-token sentence shares), L2-normalised.
SIF weights from a Zipf estimate of token frequency, PCA to 64–256 dimensions and whitening
were measured on the validation set and did not help (detection and false-positive rates
within a few points, mostly worse), so the plain centred mean is used. The table is built
once per embedding-model version (17 s on two idle cores, ~50 s on a loaded machine) and
cached as ``.npz`` under ``cache_dir()/"scorers"``.

Long texts are also scored by overlapping windows, because one harmful paragraph in a long
reply would otherwise be diluted by the rest.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from redline import paths
from redline.scoring.embeddings import DIMENSION, Embedder, _load, model_dir

#: Bump when the table's construction changes, so older cached tables are rebuilt.
STATIC_FORMAT = "1"
#: Tokens run through MiniLM per forward pass while building the table.
BUILD_BATCH = 1024
#: Tokens read per text; beyond this the text is not scored (about 30 000 characters).
MAX_TOKENS = 8192
#: Texts longer than this many tokens are also scored by windows of this size.
WINDOW_TOKENS = 32
#: Windows overlap by half, so a harmful span is never cut in two by every window.
WINDOW_STRIDE = WINDOW_TOKENS // 2

Vectors = npt.NDArray[np.float32]


@dataclass(frozen=True)
class Table:
    """Per-token vectors (vocabulary × 384) and how long building them took."""

    vectors: Vectors
    build_seconds: float


def static_id(embedder: Embedder) -> str:
    """Identity of the static vectors: the contextual model's id plus this construction."""
    return f"static/{embedder.id}/cls-token-sep-mean/{STATIC_FORMAT}"


def table_path(embedder: Embedder, cache_dir: Path | None = None) -> Path:
    key = hashlib.sha256(static_id(embedder).encode()).hexdigest()[:24]
    return (cache_dir or paths.cache_dir() / "scorers") / f"static-minilm-{key}.npz"


def token_weights(tokenizer: Any) -> npt.NDArray[np.float32]:
    """1 per vocabulary token, 0 for special and unused ones (``[CLS]``, ``[unused7]``)."""
    vocab = tokenizer.get_vocab()
    weights = np.ones(len(vocab), dtype=np.float32)
    for token, index in vocab.items():
        if token.startswith("[") and token.endswith("]"):
            weights[index] = 0.0
    return weights


def build_table(embedder: Embedder) -> Table:
    """Run every vocabulary token through MiniLM; about 17 s on two CPU cores."""
    import torch

    start = time.perf_counter()
    loaded = _load(embedder._path or model_dir())
    tokenizer, model = loaded.tokenizer, loaded.model
    vocab = tokenizer.convert_ids_to_tokens(list(range(tokenizer.vocab_size)))
    ids = torch.arange(len(vocab))
    out = np.empty((len(vocab), DIMENSION), dtype=np.float32)
    with loaded.lock, torch.inference_mode():
        for begin in range(0, len(vocab), BUILD_BATCH):
            batch = ids[begin : begin + BUILD_BATCH]
            inputs = torch.stack([
                torch.full_like(batch, tokenizer.cls_token_id), batch,
                torch.full_like(batch, tokenizer.sep_token_id),
            ], dim=1)
            hidden = model(input_ids=inputs, attention_mask=torch.ones_like(inputs))
            out[begin : begin + len(batch)] = hidden.last_hidden_state.mean(dim=1).numpy()
    return Table(out, time.perf_counter() - start)


def _save(table: Table, path: Path, ident: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp.npz")
    np.savez(
        tmp, id=np.array(ident), vectors=table.vectors.astype(np.float16),
        build_seconds=np.array(table.build_seconds),
    )
    os.replace(tmp, path)


def _load_cached(path: Path, ident: str) -> Table | None:
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            if str(data["id"]) != ident:
                return None
            return Table(data["vectors"].astype(np.float32), float(data["build_seconds"]))
    except (OSError, KeyError, ValueError):
        return None  # corrupt or foreign: rebuild rather than trust it


class StaticEmbedder:
    """Text → unit vector as the centred mean of static token vectors."""

    def __init__(self, table: Table, tokenizer: Any, ident: str) -> None:
        weights = token_weights(tokenizer)
        centre = (table.vectors * weights[:, None]).sum(axis=0) / weights.sum()
        # Centred and pre-multiplied by the weights: a text vector is one gather and one sum.
        self._weighted = ((table.vectors - centre) * weights[:, None]).astype(np.float32)
        self._tokenizer = tokenizer
        self.id = ident
        self.build_seconds = table.build_seconds

    def _ids(self, texts: Sequence[str]) -> list[list[int]]:
        encodings = self._tokenizer.encode_batch(list(texts), add_special_tokens=False)
        return [e.ids[:MAX_TOKENS] for e in encodings]

    def _pool(self, ids: Sequence[int]) -> Vectors:
        index = np.asarray(ids, dtype=np.int64)
        total = self._weighted[index].sum(axis=0)
        norm = float(np.linalg.norm(total))
        result: Vectors = total / norm if norm > 0 else total
        return result

    def embed(self, texts: Sequence[str]) -> Vectors:
        """One unit vector per text, shape (len(texts), 384)."""
        if not texts:
            return np.zeros((0, DIMENSION), dtype=np.float32)
        return np.stack([self._pool(ids) for ids in self._ids(texts)])

    def embed_windows(self, texts: Sequence[str]) -> tuple[Vectors, list[int]]:
        """Whole-text vectors plus window vectors of long texts; ``owner[i]`` is the text
        that row ``i`` belongs to."""
        rows: list[Vectors] = []
        owner: list[int] = []
        for n, ids in enumerate(self._ids(texts)):
            rows.append(self._pool(ids))
            owner.append(n)
            if len(ids) > WINDOW_TOKENS:
                for begin in range(0, len(ids) - WINDOW_STRIDE, WINDOW_STRIDE):
                    rows.append(self._pool(ids[begin : begin + WINDOW_TOKENS]))
                    owner.append(n)
        return np.stack(rows), owner


def _tokenizer(path: Path) -> Any:
    import tokenizers

    tokenizer = tokenizers.Tokenizer.from_file(str(path / "tokenizer.json"))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    return tokenizer


_shared: dict[Path, StaticEmbedder] = {}
_shared_lock = threading.Lock()


def static_embedder(
    embedder: Embedder | None = None, cache_dir: Path | None = None
) -> StaticEmbedder:
    """The process-wide static embedder: loaded from the cache, or built and cached."""
    embedder = embedder or Embedder()
    path = table_path(embedder, cache_dir)
    with _shared_lock:
        if path not in _shared:
            ident = static_id(embedder)
            table = _load_cached(path, ident)
            if table is None:
                table = build_table(embedder)
                _save(table, path, ident)
            _shared[path] = StaticEmbedder(table, _tokenizer(embedder._path or model_dir()), ident)
        return _shared[path]
