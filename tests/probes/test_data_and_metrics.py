"""Prompt sets, figures and artefact files, without the model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from redline.errors import InputError, VerificationError
from redline.probes import artefact as store
from redline.probes.datasets import BUNDLED, examples, load_set, per_class
from redline.probes.detector import to_guard_scale
from redline.probes.metrics import auroc, auroc_interval, threshold_at_fpr

from .conftest import SmallProbe


def _prompts(name: str) -> set[str]:
    return {e.messages[-1].content for e in examples(load_set(name))}


def test_bundled_sets_load_and_held_out_prompts_never_appear_in_training() -> None:
    for name in BUNDLED:
        found = examples(load_set(name))
        assert found, name
    assert load_set("harmful-intent-heldout").split == "heldout"
    assert load_set("controls").split == "control"
    for concept in ("harmful-intent", "deception"):
        train = _prompts(concept)
        assert not train & _prompts(f"{concept}-heldout")
        assert not train & _prompts("controls")
        assert not _prompts(f"{concept}-heldout") & _prompts("controls")


def test_pairs_expand_to_a_deceptive_and_an_honest_answer() -> None:
    found = examples(load_set("deception-heldout"))
    deceptive, honest = found[0], found[1]
    assert (deceptive.positive, honest.positive) == (True, False)
    assert deceptive.messages[-1].content == honest.messages[-1].content
    assert deceptive.messages[0].role == "system" and "trick" in deceptive.messages[0].content
    assert deceptive.reply != honest.reply
    assert len(per_class(found, 3)) == 6


def test_generic_replies_double_the_set_with_the_same_labels() -> None:
    data = load_set("harmful-intent")
    found = examples(data)
    plain = len(data.positive) + len(data.negative)
    assert len(found) == 2 * plain
    assert [e.positive for e in found[plain:]] == [e.positive for e in found[:plain]]
    assert {e.reply for e in found[plain:]} == set(data.replies)


def test_a_bad_set_names_the_file_and_field(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nconcept: c\nsplit: control\npositive: [a harmful thing]\n")
    with pytest.raises(InputError, match="negatives only"):
        load_set(bad)
    bad.write_text("name: x\nconcept: c\nsplit: training\nnegative: [hi]\n")
    with pytest.raises(InputError, match="split") as caught:
        load_set(bad)
    assert str(bad) in str(caught.value)
    with pytest.raises(InputError, match="no prompt set 'nope'"):
        load_set("nope")


def test_auroc_and_threshold_at_a_stated_fpr() -> None:
    labels = np.array([True, True, False, False])
    assert auroc(np.array([0.9, 0.8, 0.1, 0.2]), labels) == 1.0
    assert auroc(np.array([0.5, 0.5, 0.5, 0.5]), labels) == 0.5
    assert auroc(np.array([0.9, 0.1, 0.5, 0.2]), labels) == 0.5
    low, high = auroc_interval(0.9, 20, 20)
    assert 0.75 < low < 0.9 < high <= 1.0
    controls = np.linspace(0.0, 0.99, 100)
    threshold = threshold_at_fpr(controls, 0.05)
    assert int((controls >= threshold).sum()) == 5
    assert int((controls >= threshold_at_fpr(controls, 0.001)).sum()) == 0


def test_guard_scale_puts_the_calibrated_threshold_on_the_tripwire_threshold() -> None:
    assert to_guard_scale(0.9, 0.9, 0.7) == pytest.approx(0.7)
    assert to_guard_scale(0.45, 0.9, 0.7) == pytest.approx(0.35)
    assert to_guard_scale(0.95, 0.9, 0.7) == pytest.approx(0.85)
    assert to_guard_scale(1.0, 0.9, 0.7) == 1.0


@pytest.mark.model
def test_artefact_round_trip_and_refusals(small_probe: SmallProbe, tmp_path: Path) -> None:
    artefact, weights = store.load(small_probe.path)
    assert artefact.model.digest == small_probe.train.meta.model_digest
    assert weights.dtype == np.float32 and weights.shape == (artefact.hidden_size,)
    assert artefact.layer in [f.layer for f in artefact.layers]
    with pytest.raises(VerificationError, match="trained on SmolLM2-135M-Instruct"):
        artefact.check_model("0" * 64)

    copy = tmp_path / "p.json"
    written = store.save(artefact, weights, copy)
    npy = copy.with_suffix(".npy")
    changed = weights.copy()
    changed[0] += 1.0
    np.save(npy, changed)
    with pytest.raises(VerificationError, match="weights were changed"):
        store.load(copy)
    # An object array (which only unpickling could read) is refused even with a matching
    # digest recorded.
    np.save(npy, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    record = json.loads(copy.read_text())
    record["weights_sha256"] = store._sha256(npy)
    copy.write_text(json.dumps(record))
    with pytest.raises(InputError, match="not a plain float32 array"):
        store.load(copy)
    assert written.weights_file == "p.npy"
