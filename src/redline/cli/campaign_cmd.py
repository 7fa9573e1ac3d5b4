"""``redline campaign``: run a campaign plan locally or on Ray, and show its state."""

from __future__ import annotations

import json
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from redline.campaign.executors import LocalExecutor, OnOutcome, OnSample, ShardExecutor
from redline.campaign.manifest import CampaignManifest, read_manifest
from redline.campaign.plan import CampaignPlan, load_campaign
from redline.campaign.runner import run_campaign
from redline.campaign.shard_run import ShardOutcome
from redline.errors import InputError
from redline.paths import runs_dir
from redline.records.runlog import SampleRecord

#: ``--ray local`` starts a Ray instance in this process instead of joining a cluster.
LOCAL_RAY = "local"


@click.group()
def campaign() -> None:
    """Campaigns: targets × versions × suites × seeds, as resumable shards."""


@campaign.command("run")
@click.argument("plan_file", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.option("--dir", "campaign_dir", type=click.Path(path_type=Path),
              help="Campaign folder [default: RUNS_DIR/campaign-NAME].")
@click.option("--ray", "ray_address",
              help="Run shards as Ray tasks: a cluster address, 'auto', or 'local' to start "
                   "a local instance.")
@click.option("--workers", type=click.IntRange(min=1),
              help="Shards in flight on Ray (and CPUs of a local instance).")
@click.option("--parallel", type=click.IntRange(min=1), default=1, show_default=True,
              help="Shards in flight when running locally.")
@click.option("--json", "as_json", is_flag=True, help="Print the manifest as JSON.")
def run_command(plan_file: Path, campaign_dir: Path | None, ray_address: str | None,
                workers: int | None, parallel: int, as_json: bool) -> None:
    """Run every shard of PLAN_FILE that has no complete run log yet."""
    plan = load_campaign(plan_file)
    root = campaign_dir or runs_dir() / f"campaign-{plan.name}"
    console = Console(stderr=True, quiet=as_json)
    counts: dict[str, int] = {}

    def sample(shard_id: str, _rec: SampleRecord) -> None:
        counts[shard_id] = counts.get(shard_id, 0) + 1

    def ended(o: ShardOutcome) -> None:
        console.print(f"{o.shard_id}: {o.status}, {o.samples}/{o.planned} samples "
                      f"({o.ran} run now), {o.fail} fail" + (f" — {o.error}" if o.error else ""))

    if ray_address is None:
        manifest = run_campaign(plan, root, LocalExecutor(parallel), on_sample=sample,
                                on_outcome=ended)
    else:
        manifest = _run_on_ray(plan, root, ray_address, workers, sample, ended)
    _print(manifest, root, as_json)


def _run_on_ray(plan: CampaignPlan, root: Path, address: str, workers: int | None,
                sample: OnSample, ended: OnOutcome) -> CampaignManifest:
    try:
        import ray  # imported here: plain local campaigns never pay for Ray
    except ImportError:
        raise InputError("--ray needs Ray: pip install 'redline[scale]'") from None
    from redline.campaign.ray_executor import RayExecutor

    if address == LOCAL_RAY:
        ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
    else:
        ray.init(address=address, log_to_driver=False)
    try:
        executor: ShardExecutor = RayExecutor(workers)
        return run_campaign(plan, root, executor, on_sample=sample, on_outcome=ended)
    finally:
        ray.shutdown()


@campaign.command("status")
@click.argument("campaign_dir", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True)
def status_command(campaign_dir: Path, as_json: bool) -> None:
    """Show each shard of a campaign and what is missing."""
    _print(read_manifest(campaign_dir), campaign_dir, as_json)


def _print(manifest: CampaignManifest, root: Path, as_json: bool) -> None:
    if as_json:
        data = manifest.model_dump(mode="json", by_alias=True)
        data["dir"] = str(root)
        data["missing"] = manifest.missing()
        click.echo(json.dumps(data, indent=2))
        return
    table = Table(title=f"campaign {manifest.name}")
    for col in ("shard", "status", "samples", "fail", "unscored"):
        table.add_column(col)
    for e in manifest.shards:
        table.add_row(e.id, e.status, f"{e.samples}/{e.planned}", str(e.fail), str(e.unscored))
    console = Console()
    console.print(table)
    missing = manifest.missing()
    console.print(f"{len(manifest.shards) - len(missing)}/{len(manifest.shards)} shards "
                  f"complete; folder: {root}")
