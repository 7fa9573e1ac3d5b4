"""``redline guard train`` and ``redline guard evaluate``: fit the semantic classifier on
your own examples, and measure detectors' detection and false-positive rates."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from redline.guard.detectors.base import DetectorResources
from redline.guard.detectors.evaluation import (
    CHOICES,
    DEFAULT_THRESHOLD,
    Evaluation,
)
from redline.guard.detectors.evaluation import evaluate as run_evaluation
from redline.guard.semantic_model import TRAIN_PATH, data_digest, load_examples
from redline.scoring.refusal import Proportion

DEFAULT_MODEL_PATH = Path("semantic-model.npz")


@click.command("train")
@click.argument("data", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--out", "out", type=click.Path(dir_okay=False, path_type=Path),
              default=DEFAULT_MODEL_PATH, show_default=True, help="Where to write the model.")
@click.option("--with-builtin", is_flag=True,
              help="Also train on redline's built-in examples.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
def train(data: Path, out: Path, with_builtin: bool, as_json: bool) -> None:
    """Fit the semantic classifier on DATA (JSON Lines {"text", "label"}, or YAML label →
    texts); labels are lexicon ids or "benign". Use the model with the guard option
    semantic_model=PATH."""
    from redline.guard.detectors.semantic import static_features
    from redline.guard.semantic_model import train as fit
    from redline.guard.static_embeddings import static_embedder

    examples = load_examples(data)
    if with_builtin:
        examples = load_examples(TRAIN_PATH) + examples
    static = static_embedder()
    model = fit(examples, lambda texts: static_features(static, texts), static.id)
    model.save(out)
    counts = {c: sum(e.label == c for e in examples) for c in (*model.categories, "benign")}
    summary: dict[str, Any] = {
        "model": str(out), "categories": list(model.categories), "examples": counts,
        "l2": dict(zip(model.categories, model.l2, strict=True)),
        "data_digest": data_digest(examples), "embedder": model.embedder_id,
    }
    if as_json:
        click.echo(json.dumps(summary, indent=2))
        return
    click.echo(f"wrote {out}: {len(model.categories)} categories from {len(examples)} examples")
    for category, n in counts.items():
        click.echo(f"  {category}: {n} examples")
    click.echo(f"use it with the guard option semantic_model={out}")


def _fmt(p: Proportion) -> str:
    if p.value is None:
        return "-"
    return f"{p.value:.3f}  [{p.low:.3f}, {p.high:.3f}]  ({p.k}/{p.n})"


def _print(result: Evaluation) -> None:
    table = Table("label", "n", "measure", "rate  [95% Wilson interval]  (k/n)",
                  title=f"{result.detector} at threshold {result.threshold:g}")
    for row in result.results:
        measure = "false positives" if row.measure == "false_positive_rate" else "detection"
        if not row.covered:
            measure += " (no detector for this label)"
        table.add_row(row.label, str(row.n), measure, _fmt(row.rate))
    Console(markup=False, highlight=False).print(table)


@click.command("evaluate")
@click.option("--data", "data", required=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Labelled examples: JSON Lines {\"text\", \"label\"} or YAML.")
@click.option("--detector", "choice", type=click.Choice(CHOICES), default="rules+semantic",
              show_default=True, help="Which detectors to run.")
@click.option("--threshold", type=click.FloatRange(0, 1, min_open=True),
              default=DEFAULT_THRESHOLD, show_default=True, help="Score at which a detector fires.")
@click.option("--policy", "policy_name", default="idais", show_default=True,
              help="Policy whose text rules run (built-in name or file).")
@click.option("--semantic-model", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A model from `redline guard train` (default: the built-in one).")
@click.option("--external-url", help="OpenAI-compatible base URL of an external classifier.")
@click.option("--external-model", help="Model name to ask the external classifier for.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def evaluate_command(
    data: Path, choice: str, threshold: float, policy_name: str, semantic_model: Path | None,
    external_url: str | None, external_model: str | None, as_json: bool,
) -> None:
    """Per label: detection rate (harmful labels) or false-positive rate (benign), with
    Wilson 95% intervals, at the threshold."""
    from redline.policy import load_policy

    options: dict[str, Any] = {}
    if semantic_model is not None:
        options["semantic_model"] = str(semantic_model)
    if external_url:
        options["external_url"] = external_url
    if external_model:
        options["external_model"] = external_model
    result = asyncio.run(run_evaluation(
        load_examples(data), choice=choice,  # type: ignore[arg-type]
        threshold=threshold, policy=load_policy(policy_name),
        resources=DetectorResources(options=options),
    ))
    if as_json:
        click.echo(result.model_dump_json(indent=2))
    else:
        _print(result)


evaluate = evaluate_command
