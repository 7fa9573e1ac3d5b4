"""``redline eval``: run a policy's protocols (or chosen suites) against a target."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from redline.assess.run_report import write_markdown_report
from redline.cli.render import print_summary
from redline.engine.runlog import RunLog, find_run, read_runlog
from redline.engine.runner import Engine, EngineConfig, RunPlan, make_plan, new_run_id
from redline.errors import InputError
from redline.models.registry import TargetOptions, resolve_target
from redline.models.target import Target
from redline.paths import runs_dir
from redline.policy import Policy, load_policy
from redline.records.chat import GenerateConfig
from redline.records.runlog import RunHeader, SampleRecord
from redline.suites.load import load_suite, suite_source
from redline.suites.model import Suite


def _suites_for(
    policy: Policy | None, names: tuple[str, ...]
) -> tuple[list[Suite], dict[str, str | None]]:
    """The suites to run and the red line each provides evidence for."""
    red_lines: dict[str, str | None] = {}
    if policy is not None:
        for line in policy.red_lines:
            for ev in line.evidence:
                red_lines.setdefault(ev.protocol, line.id)
        for name in policy.usability_protocols + policy.context_protocols:
            red_lines.setdefault(name, None)
    wanted = list(names) or list(red_lines)
    if not wanted:
        raise InputError("nothing to run: give --policy or --suite")
    suites = [load_suite(name) for name in wanted]
    return suites, {s.name: red_lines.get(s.name, s.red_line) for s in suites}


@click.command("eval")
@click.option("--policy", "policy_ref", help="Built-in policy name or policy YAML file.")
@click.option("--suite", "suite_refs", multiple=True,
              help="Suite name, file, or FORMAT:FILE (harmbench, advbench, jailbreakbench, "
                   "xstest, jsonl); repeatable. Default: every protocol of the policy.")
@click.option("--target", "target_uri", help="Target URI, e.g. local:smollm2 or http://HOST:PORT/v1")
@click.option("--model", "model_name", help="Model name to request from an HTTP target.")
@click.option("--system-prompt", help="System prompt for conversations that have none.")
@click.option("--attack", "attacks", multiple=True,
              help="Attack name; repeatable. Default: direct.")
@click.option("--attacker", "attacker_uri",
              help="Target URI of the attacker model for iterative attacks.")
@click.option("--judge", "judge_uri", help="Target URI of the judge for iterative attacks.")
@click.option("--limit", type=click.IntRange(min=1), help="At most N cases per suite.")
@click.option("--epochs", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--concurrency", type=click.IntRange(min=1), default=32, show_default=True,
              help="Samples in flight; the local model batches up to 32 into one pass.")
@click.option("--rate-limit", type=click.FloatRange(min=0, min_open=True),
              help="Requests per second to the target.")
@click.option("--max-tokens", type=click.IntRange(min=1), default=128, show_default=True)
@click.option("--temperature", type=click.FloatRange(0, 2), default=0.0, show_default=True)
@click.option("--timeout", "timeout_s", type=click.FloatRange(min=0, min_open=True), default=600,
              show_default=True, help="Seconds per sample, attack turns included.")
@click.option("--no-cache", is_flag=True, help="Do not read or write the response cache.")
@click.option("--probe", "probe_path", type=click.Path(exists=True, dir_okay=False,
                                                       path_type=Path),
              help="Activation-probe artefact: a local target stops generations it trips.")
@click.option("--out", "out_dir", type=click.Path(path_type=Path),
              help="Folder for run folders [default: $REDLINE_RUNS_DIR or ./runs].")
@click.option("--run-id", help="Name of the run folder (default: timestamp + random suffix).")
@click.option("--resume", "resume_ref", help="Complete an interrupted run (id or log path).")
@click.option("--replay", "replay_ref",
              help="Re-send another run's logged prompts (attacker turns included) to --target.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def eval_command(
    policy_ref: str | None,
    suite_refs: tuple[str, ...],
    target_uri: str | None,
    model_name: str | None,
    system_prompt: str | None,
    attacks: tuple[str, ...],
    attacker_uri: str | None,
    judge_uri: str | None,
    limit: int | None,
    epochs: int,
    seed: int,
    concurrency: int,
    rate_limit: float | None,
    max_tokens: int,
    temperature: float,
    timeout_s: float,
    no_cache: bool,
    probe_path: Path | None,
    out_dir: Path | None,
    run_id: str | None,
    resume_ref: str | None,
    replay_ref: str | None,
    as_json: bool,
) -> None:
    """Evaluate a target against a policy's red lines; writes a run log and a report."""
    engine_config = EngineConfig(concurrency=concurrency, rate_limit=rate_limit,
                                 sample_timeout_s=timeout_s, cache=not no_cache)
    replay: RunLog | None = None
    if resume_ref:
        log = read_runlog(find_run(resume_ref, out_dir))
        run_dir = log.path.parent
        h = log.header
        options = TargetOptions.model_validate(h.target.metadata.get("options", {}))
        target = resolve_target(h.target.uri, options)
        if h.replay_source:
            replay = read_runlog(Path(h.replay_source))
        plan = _plan_from_header(h, target, options, h.run_id, concurrency, replay)
    else:
        if not target_uri:
            raise InputError("--target is required (e.g. --target local:smollm2)")
        options = TargetOptions(model=model_name, system_prompt=system_prompt)
        if probe_path is not None:
            if not target_uri.startswith("local:"):
                raise InputError(f"--probe reads hidden states: {target_uri!r} is not a "
                                 "local target", field="--probe")
            options.extra["probe"] = str(probe_path.resolve())
        policy = load_policy(policy_ref) if policy_ref and not replay_ref else None
        if policy is not None and policy_ref is not None:
            options = _with_weights_requirement(options, policy, policy_ref, target_uri)
        target = resolve_target(target_uri, options)
        run_id = run_id or new_run_id()
        run_dir = (out_dir or runs_dir()) / run_id
        if (run_dir / "log.jsonl").exists():
            raise InputError(f"run {run_id!r} already exists in {run_dir.parent}; "
                             "use --resume to complete it")
        if replay_ref:
            # Same suites, attacks and settings as the replayed run; only the target differs.
            replay = read_runlog(find_run(replay_ref, out_dir))
            plan = _plan_from_header(replay.header, target, options, run_id, concurrency, replay)
        else:
            suites, red_lines = _suites_for(policy, suite_refs)
            plan = make_plan(
                suites, target=target,
                generate=GenerateConfig(max_tokens=max_tokens, temperature=temperature),
                run_id=run_id, attacks=list(attacks) or None,
                attack_options={k: v for k, v in (("attacker", attacker_uri),
                                                  ("judge", judge_uri)) if v},
                epochs=epochs, seed=seed, limit=limit, concurrency=concurrency,
                policy_id=policy.id if policy else None,
                policy_digest=policy.digest() if policy else None,
                policy_source=_policy_source(policy_ref) if policy_ref else None,
                suite_red_lines=red_lines,
                suite_sources={s.name: suite_source(ref) for s, ref in
                               zip(suites, suite_refs or [s.name for s in suites], strict=True)},
            )
            plan.header.target.metadata["options"] = options.model_dump(exclude_defaults=True)
    result = asyncio.run(_run(target, engine_config, plan, run_dir, replay, quiet=as_json))
    report = write_markdown_report(result, run_dir / "report.md")
    if as_json:
        assert result.summary is not None
        click.echo(json.dumps({
            "run_id": result.header.run_id,
            "log": str(result.path),
            "report": str(report),
            "summary": result.summary.model_dump(mode="json", by_alias=True),
        }, indent=2))
        return
    console = Console()
    print_summary(console, result)
    console.print(f"run log: {result.path}")
    console.print(f"report:  {report}")


def _with_weights_requirement(
    options: TargetOptions, policy: Policy, policy_ref: str, target_uri: str
) -> TargetOptions:
    """Hand the policy's signature requirement to a local target; refuse other targets,
    whose weights cannot be checked from here."""
    need = policy.weights
    if need is None or not need.require_signature or need.public_key is None:
        return options
    if not target_uri.startswith("local:"):
        raise InputError(
            f"policy {policy.id!r} requires signed weights, which only a local target can "
            f"prove; {target_uri!r} is not local"
        )
    base = Path(policy_ref).parent if Path(policy_ref).is_file() else Path.cwd()
    requirement = {"public_key": str((base / need.public_key).resolve())}
    if need.signature:
        requirement["signature"] = str((base / need.signature).resolve())
    return options.model_copy(
        update={"extra": {**options.extra, "require_signature": requirement}}
    )


def _policy_source(ref: str) -> str:
    """A policy reference that still resolves from another working directory."""
    path = Path(ref)
    return str(path.resolve()) if path.is_file() else ref


def _plan_from_header(
    h: RunHeader,
    target: Target,
    options: TargetOptions,
    run_id: str,
    concurrency: int,
    replay: RunLog | None,
) -> RunPlan:
    """The plan a header describes, with policy and suites reloaded from their sources so a
    resume notices if either changed since the start."""
    policy = load_policy(h.policy_source) if h.policy_source else None
    suites = [load_suite(h.suite_sources.get(name, name)) for name in h.suites]
    plan = make_plan(
        suites, target=target, generate=h.generate, run_id=run_id, attacks=h.attacks,
        attack_options=h.attack_options, epochs=h.epochs, seed=h.seed, limit=h.limit,
        concurrency=concurrency,
        policy_id=h.policy_id, policy_digest=policy.digest() if policy else None,
        policy_source=h.policy_source, suite_red_lines=h.suite_red_lines,
        suite_sources=h.suite_sources, replay=replay,
    )
    plan.header.target.metadata["options"] = options.model_dump(exclude_defaults=True)
    return plan


async def _run(target: Target, config: EngineConfig, plan: RunPlan, run_dir: Path,
               replay: RunLog | None, *, quiet: bool) -> RunLog:
    load = getattr(target, "load", None)
    if "require_signature" in plan.header.target.metadata.get("options", {}).get("extra", {}) \
            and load is not None:
        await load()  # verify the weights before a run log exists
    engine = Engine(target, config, replay=replay)
    console = Console(stderr=True)
    total = len(plan.specs)
    done = 0
    if (run_dir / "log.jsonl").exists():
        done = min(len(read_runlog(run_dir / "log.jsonl").samples), total)
    try:
        with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                      TimeElapsedColumn(), console=console, disable=quiet,
                      refresh_per_second=4) as progress:
            task = progress.add_task(f"eval {plan.header.target.uri}", total=total,
                                     completed=done)
            plain = not quiet and not console.is_terminal
            started = time.monotonic()

            def advance(_rec: SampleRecord) -> None:
                nonlocal done
                done += 1
                progress.advance(task)
                # Logs and CI have no live bar: a line every tenth of the run instead.
                if plain and (done == total or done % max(1, total // 10) == 0):
                    console.print(f"{done}/{total} samples, {time.monotonic() - started:.0f} s")

            return await engine.run(plan, run_dir, on_sample=advance)
    finally:
        await engine.aclose()
