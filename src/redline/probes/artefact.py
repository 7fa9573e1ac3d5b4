"""A trained probe on disk: ``NAME.json`` (everything but the weights) and ``NAME.npy``.

No pickle: the weights are a plain float32 ``.npy`` read with ``allow_pickle=False`` and
checked against the sha256 the JSON records. The JSON names the digest of the model whose
activations trained the probe; a probe is meaningless on other weights, so loading it for
another model is refused.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from redline.errors import InputError, VerificationError
from redline.probes.collect import Pooling
from redline.scoring.refusal import Proportion

FORMAT: Literal["redline-probe/1"] = "redline-probe/1"
#: A probe JSON is small; anything bigger is not one.
MAX_JSON_BYTES = 1024 * 1024


class ProbeModel(BaseModel):
    """The model a probe belongs to."""

    model_config = ConfigDict(extra="forbid")

    target: str
    model: str
    #: sha256 of the weights the local target converted and loaded (its GGUF).
    digest: str


class Calibration(BaseModel):
    """Threshold on benign controls: at most ``target_fpr`` of them trip."""

    model_config = ConfigDict(extra="forbid")

    set_name: str
    target_fpr: float = Field(gt=0, lt=1)
    #: Controls at or above the threshold, with its Wilson interval.
    fpr: Proportion


class LayerFigure(BaseModel):
    model_config = ConfigDict(extra="forbid")

    layer: int
    val_auroc: float
    l2: float


class ProbeArtefact(BaseModel):
    """A linear probe P = sigmoid(h·w + bias) on the output of decoder layer ``layer``."""

    model_config = ConfigDict(extra="forbid")

    format: Literal["redline-probe/1"] = FORMAT
    name: str
    concept: str
    model: ProbeModel
    layer: int = Field(ge=1)
    pooling: Pooling
    hidden_size: int = Field(ge=1)
    bias: float
    threshold: float = Field(ge=0, le=1)
    l2: float
    train_set: str
    n_train: int
    #: Validation AUROC per layer on the held-out part of the training set; the best chose
    #: ``layer``.
    layers: list[LayerFigure]
    calibration: Calibration
    weights_file: str
    weights_sha256: str

    def check_model(self, digest: str | None) -> None:
        """``VerificationError`` unless ``digest`` is the model this probe was trained on."""
        if digest is None:
            raise VerificationError(
                f"probe {self.name!r}: the target does not report a weights digest, so it "
                "cannot be checked to be the model the probe was trained on"
            )
        if digest != self.model.digest:
            raise VerificationError(
                f"probe {self.name!r} was trained on {self.model.model} with weights digest "
                f"{self.model.digest[:16]}…; the target's weights have digest {digest[:16]}…: "
                "a probe only reads the activations of the model it was trained on"
            )


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def save(artefact: ProbeArtefact, weights: npt.NDArray[np.float32], path: Path) -> ProbeArtefact:
    """Write ``path`` (.json) and its weights beside it; returns the artefact as written."""
    if path.suffix != ".json":
        raise InputError("a probe is saved as NAME.json (weights go to NAME.npy)", file=path)
    path.parent.mkdir(parents=True, exist_ok=True)
    npy = path.with_suffix(".npy")
    np.save(npy, weights.astype(np.float32), allow_pickle=False)
    written = artefact.model_copy(
        update={"weights_file": npy.name, "weights_sha256": _sha256(npy)}
    )
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(written.model_dump_json(indent=2), encoding="utf-8")
    os.replace(tmp, path)
    return written


def load(path: Path) -> tuple[ProbeArtefact, npt.NDArray[np.float32]]:
    """Read a probe and its verified weights; ``InputError`` or ``VerificationError``."""
    try:
        if path.stat().st_size > MAX_JSON_BYTES:
            raise InputError(f"larger than {MAX_JSON_BYTES} bytes: not a probe", file=path)
        artefact = ProbeArtefact.model_validate_json(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError(f"cannot read probe: {exc.strerror}", file=path) from None
    except ValidationError as exc:
        raise InputError(f"not a redline probe: {exc}", file=path) from None
    npy = path.parent / Path(artefact.weights_file).name  # never outside the probe's folder
    try:
        digest = _sha256(npy)
    except OSError as exc:
        raise InputError(f"probe weights missing: {exc.strerror}", file=npy) from None
    if digest != artefact.weights_sha256:
        raise VerificationError(
            f"{npy}: weights sha256 {digest[:16]}… does not match {artefact.weights_sha256[:16]}… "
            f"recorded in {path.name}: the weights were changed"
        )
    try:
        weights = np.load(npy, allow_pickle=False)
    except ValueError as exc:  # e.g. an object array, which would need unpickling
        raise InputError(f"not a plain float32 array: {exc}", file=npy) from None
    if weights.dtype != np.float32 or weights.shape != (artefact.hidden_size,):
        raise InputError(
            f"weights have shape {weights.shape} {weights.dtype}; expected "
            f"({artefact.hidden_size},) float32", file=npy,
        )
    if not np.isfinite(weights).all():
        raise InputError("weights are not all finite", file=npy)
    return artefact, weights
