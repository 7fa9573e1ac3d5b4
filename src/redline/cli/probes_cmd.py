"""``redline probes``: collect activations, train and evaluate probes, list what exists."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import cast

import click
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from redline import paths
from redline.errors import InputError
from redline.probes import artefact as store
from redline.probes.collect import (
    DEFAULT_LAYERS,
    POOLINGS,
    Activations,
    Pooling,
    collect,
    describe,
)
from redline.probes.datasets import BUNDLED, examples, load_set, resolve
from redline.probes.datasets import per_class as first_per_class
from redline.probes.evaluate import COMPARISONS, Comparison, Evaluation, evaluate
from redline.probes.train import DEFAULT_FPR, train_probe
from redline.probes.tripwire import local_target
from redline.scoring.refusal import Proportion


def probes_dir() -> Path:
    return paths.cache_dir() / "probes"


def _layers(value: str) -> list[int]:
    try:
        layers = [int(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise InputError(f"--layers must be comma-separated integers, got {value!r}") from None
    if not layers or len(set(layers)) != len(layers):
        raise InputError(f"--layers must list distinct layers, got {value!r}")
    return layers


@click.group("probes")
def probes() -> None:
    """Activation probes on open weights: internal tripwires."""


@probes.command("collect")
@click.argument("prompt_set")
@click.option("--target", default="local:smollm2", show_default=True)
@click.option("--layers", default=",".join(map(str, DEFAULT_LAYERS)), show_default=True,
              help="Decoder layers (1…N) to keep.")
@click.option("--pooling", type=click.Choice(POOLINGS), default=None,
              help="Token pooling for training (default: the set's own).")
@click.option("--per-class", type=click.IntRange(min=1), default=None,
              help="Keep only the first N examples of each class.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None)
def collect_command(
    prompt_set: str, target: str, layers: str, pooling: str | None, per_class: int | None,
    out: Path | None,
) -> None:
    """Run PROMPT_SET (a bundled name or a YAML file) through TARGET and store activations."""
    data = load_set(prompt_set)
    found = examples(data)
    if per_class is not None:
        found = first_per_class(found, per_class)
    local = local_target(target)
    out = out or probes_dir() / "activations" / f"{data.name}.npz"
    meta = {"set_name": data.name, "set_path": str(resolve(prompt_set).resolve()),
            "concept": data.concept, "split": data.split}
    with Progress(transient=True) as bar:
        task = bar.add_task(f"collecting {data.name}", total=len(found))
        acts = asyncio.run(collect(
            local, found, _layers(layers), cast(Pooling, pooling or data.pooling),
            meta, progress=lambda done: bar.update(task, completed=done),
        ))
    acts.save(out)
    click.echo(describe(acts))
    click.echo(f"wrote {out}")



@probes.command("train")
@click.argument("activations", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--controls", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              required=True, help="Activations of benign controls, for the threshold.")
@click.option("--fpr", type=float, default=DEFAULT_FPR, show_default=True,
              help="False-positive rate on the controls that the threshold allows.")
@click.option("--name", default=None, help="Probe name (default: the training set's).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None)
def train_command(
    activations: Path, controls: Path, fpr: float, name: str | None, out: Path | None
) -> None:
    """Fit per-layer probes on ACTIVATIONS, keep the best layer, calibrate, save."""
    train = Activations.load(activations)
    if train.meta.split != "train":
        raise InputError(f"a {train.meta.split} set cannot train a probe", file=activations)
    name = name or train.meta.set_name
    artefact, weights = train_probe(train, Activations.load(controls), name, fpr)
    written = store.save(artefact, weights, out or probes_dir() / f"{name}.json")
    best = next(f for f in written.layers if f.layer == written.layer)
    click.echo(
        f"probe {name}: layer {written.layer} (validation AUROC {best.val_auroc:.3f}), "
        f"threshold {written.threshold:.4f} at {fpr:g} FPR on controls "
        f"({written.calibration.fpr.k}/{written.calibration.fpr.n} trip)"
    )
    click.echo(f"wrote {out or probes_dir() / f'{name}.json'}")


def _fmt(p: Proportion) -> str:
    value = "-" if p.value is None else f"{p.value:.3f}"
    return f"{value} [{p.low:.3f}, {p.high:.3f}] ({p.k}/{p.n})"


def print_evaluation(result: Evaluation) -> None:
    table = Table(
        "scorer", "AUROC [95%]", "threshold", "detection [95%]", "held-out FPR [95%]",
        "control FPR",
        title=f"{result.probe} (layer {result.layer}) on {result.heldout_set}: "
        f"{result.n_positive} positive, {result.n_negative} negative; "
        f"thresholds at {result.target_fpr:g} FPR on controls",
    )
    for f in result.results:
        table.add_row(
            f.scorer, f"{f.auroc:.3f} [{f.auroc_low:.3f}, {f.auroc_high:.3f}]",
            f"{f.threshold:.4f}", _fmt(f.detection), _fmt(f.fpr), _fmt(f.control_fpr),
        )
    Console(markup=False, highlight=False, width=200).print(table)


@probes.command("evaluate")
@click.argument("probe", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--heldout", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              required=True, help="Activations of a heldout set.")
@click.option("--controls", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              required=True)
@click.option("--train", "train_path", default=None,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Training activations (needed by --compare).")
@click.option("--compare", default="",
              help=f"Comma-separated text classifiers to compare: {', '.join(COMPARISONS)}.")
@click.option("--json", "as_json", is_flag=True)
def evaluate_command(
    probe: Path, heldout: Path, controls: Path, train_path: Path | None, compare: str,
    as_json: bool,
) -> None:
    """AUROC and detection at the calibrated FPR on held-out prompts, with intervals."""
    chosen: list[Comparison] = []
    for name in filter(None, (c.strip() for c in compare.split(","))):
        if name not in COMPARISONS:
            raise InputError(f"--compare: unknown classifier {name!r}; known: "
                             + ", ".join(COMPARISONS))
        chosen.append(name)
    artefact, weights = store.load(probe)
    result = evaluate(
        artefact, weights, Activations.load(heldout), Activations.load(controls), chosen,
        Activations.load(train_path) if train_path else None,
    )
    if as_json:
        click.echo(result.model_dump_json(indent=2))
    else:
        print_evaluation(result)


@probes.command("list")
@click.option("--dir", "folder", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder of probes (default: the cache's).")
@click.option("--json", "as_json", is_flag=True)
def list_command(folder: Path | None, as_json: bool) -> None:
    """Bundled prompt sets and the probes saved in the folder."""
    sets = [{"name": n, "split": load_set(n).split, "examples": len(examples(load_set(n)))}
            for n in BUNDLED]
    found = []
    for path in sorted((folder or probes_dir()).glob("*.json")):
        try:
            a, _ = store.load(path)
        except InputError:
            continue  # not a probe
        found.append({"name": a.name, "concept": a.concept, "layer": a.layer,
                      "threshold": a.threshold, "target_fpr": a.calibration.target_fpr,
                      "model": a.model.model, "digest": a.model.digest, "path": str(path)})
    if as_json:
        click.echo(json.dumps({"sets": sets, "probes": found}, indent=2))
        return
    console = Console(markup=False, highlight=False)
    table = Table("prompt set", "split", "examples")
    for s in sets:
        table.add_row(str(s["name"]), str(s["split"]), str(s["examples"]))
    console.print(table)
    table = Table("probe", "concept", "layer", "threshold", "FPR", "model", "path")
    for p in found:
        table.add_row(str(p["name"]), str(p["concept"]), str(p["layer"]),
                      f"{p['threshold']:.4f}", f"{p['target_fpr']:g}", str(p["model"]),
                      str(p["path"]))
    console.print(table)
