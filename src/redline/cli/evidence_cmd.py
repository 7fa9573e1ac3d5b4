"""``redline keys``, ``attest``, ``reveal``, ``verify``: signed, selectively disclosed evidence.

Exit codes: 0 verified, 2 bad input, 4 a file or run not found, 5 a check failed.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from redline.cli.render import echo_fields
from redline.errors import InputError, VerificationError
from redline.evidence import disclosure
from redline.evidence.attest import ATTESTATION_NAME, attest_run, load_run
from redline.evidence.canonical import to_json_value
from redline.evidence.commitment import SALTS_NAME
from redline.evidence.keys import generate_keypair, load_private_key
from redline.evidence.verify import VerifyReport, verify_evidence

DISCLOSURE_NAME = "disclosure.json"


@click.group()
def keys() -> None:
    """Ed25519 signing keys for attestations."""


@keys.command("generate")
@click.option("--out", "prefix", required=True, type=click.Path(path_type=Path),
              help="Path prefix: writes PREFIX.key (private, mode 0600) and PREFIX.pub.")
@click.option("--json", "as_json", is_flag=True)
def generate_command(prefix: Path, as_json: bool) -> None:
    """Generate a key pair; refuses to overwrite existing files."""
    pair = generate_keypair(prefix)
    echo_fields({"private_key": str(pair.private_path), "public_key": str(pair.public_path),
                 "key_id": pair.key_id}, as_json)


@click.command("attest")
@click.argument("run")
@click.option("--key", "key_path", required=True, type=click.Path(path_type=Path),
              help="Ed25519 private key (PEM) from `redline keys generate`.")
@click.option("--out", type=click.Path(path_type=Path),
              help=f"Envelope file [default: the run folder's {ATTESTATION_NAME}].")
@click.option("--policy", "policy_ref",
              help="Policy for the tiers, if the run's recorded source moved.")
@click.option("--force", is_flag=True, help="Replace an existing attestation.")
@click.option("--json", "as_json", is_flag=True)
def attest(
    run: str, key_path: Path, out: Path | None, policy_ref: str | None, force: bool,
    as_json: bool,
) -> None:
    """Commit to a finished RUN's samples and sign an in-toto statement (DSSE, Ed25519).

    Also writes the run's private salts file (mode 0600): keep it, never publish it;
    revealing samples later needs it.
    """
    log = load_run(run)
    result = attest_run(log, load_private_key(key_path), out=out, policy_ref=policy_ref,
                        force=force)
    c = result.statement.predicate.commitment
    echo_fields({
        "attestation": str(result.path),
        "salts": f"{result.salts_path} (private)",
        "key_id": result.key_id,
        "digest": result.digest,
        "root": c.root,
        "samples": c.size,
        "tiers": "included" if result.statement.predicate.tiers is not None
        else "none (redline.assess.tiers not available)",
    }, as_json)


def _parse_indices(value: str | None) -> list[int] | None:
    if value is None:
        return None
    try:
        return [int(part) for part in value.split(",") if part.strip()]
    except ValueError:
        raise InputError(f"--indices takes comma-separated numbers, got {value!r}") from None


@click.command("reveal")
@click.argument("run")
@click.option("--random", "random_k", type=click.IntRange(min=1),
              help="Reveal K samples drawn from --seed and the attestation digest.")
@click.option("--seed", help="Seed for --random: best chosen by the auditor, after the "
              "attestation is published.")
@click.option("--indices", help="Reveal these leaf indices (0-based, comma-separated).")
@click.option("--attestation", type=click.Path(path_type=Path),
              help=f"[default: the run folder's {ATTESTATION_NAME}]")
@click.option("--salts", type=click.Path(path_type=Path),
              help=f"[default: the run folder's {SALTS_NAME}]")
@click.option("--out", type=click.Path(path_type=Path),
              help=f"Bundle file [default: the run folder's {DISCLOSURE_NAME}].")
@click.option("--json", "as_json", is_flag=True)
def reveal(
    run: str, random_k: int | None, seed: str | None, indices: str | None,
    attestation: Path | None, salts: Path | None, out: Path | None, as_json: bool,
) -> None:
    """Disclose chosen samples of RUN with their salts and inclusion proofs."""
    log = load_run(run)
    folder = log.path.parent
    bundle = disclosure.reveal(
        log, attestation=attestation or folder / ATTESTATION_NAME,
        salts=salts or folder / SALTS_NAME, indices=_parse_indices(indices),
        random_k=random_k, seed=seed,
    )
    path = out or folder / DISCLOSURE_NAME
    path.write_text(json.dumps(to_json_value(bundle), indent=2, ensure_ascii=False) + "\n",
                    encoding="utf-8")
    echo_fields({"disclosure": str(path), "indices": [i.index for i in bundle.items],
                 "attestation_digest": bundle.attestation_digest.sha256,
                 "root": bundle.root}, as_json)


def _print_report(report: VerifyReport) -> None:
    width = max(len(c.name) for c in report.checks)
    for check in report.checks:
        click.echo(f"{check.status.upper():<4}  {check.name:<{width}}  {check.detail}")


@click.command("verify")
@click.argument("attestation", type=click.Path(path_type=Path))
@click.option("--public-key", type=click.Path(path_type=Path),
              help="The signer's Ed25519 public key (PEM); without it `signature` fails.")
@click.option("--disclosure", "bundle", type=click.Path(path_type=Path),
              help="A disclosure bundle from `redline reveal`.")
@click.option("--run", "run_ref", help="The full run (id, folder or log) for an audit.")
@click.option("--salts", type=click.Path(path_type=Path),
              help=f"Salts for --run [default: {SALTS_NAME} beside the log].")
@click.option("--policy", "policy_ref", help="Policy for recomputing tiers with --run.")
@click.option("--json", "as_json", is_flag=True)
def verify(
    attestation: Path, public_key: Path | None, bundle: Path | None, run_ref: str | None,
    salts: Path | None, policy_ref: str | None, as_json: bool,
) -> None:
    """Check an ATTESTATION, and a disclosure bundle or the full run against it.

    Each check prints pass, fail or skip; any failure exits 5 naming the failed checks.
    """
    report = verify_evidence(attestation, public_key=public_key, disclosure=bundle,
                             run=run_ref, salts=salts, policy=policy_ref)
    if as_json:
        click.echo(json.dumps(report.model_dump(mode="json") | {"ok": report.ok}, indent=2))
    else:
        _print_report(report)
    if not report.ok:
        raise VerificationError(f"verification failed: {', '.join(report.failed)}")
    if not as_json:
        passed = sum(c.status == "pass" for c in report.checks)
        click.echo(f"verified: {passed} checks passed, {len(report.checks) - passed} skipped")
