"""``redline vet keygen / sign / verify``: OpenSSF model signatures over a model directory.

Exit codes: 0 signed or verified, 2 bad input (a directory, key or option), 5 the directory
does not match its signature, or has none. ``redline.vet.signing`` (and model-signing with
it) is imported inside each command, so that ``redline --help`` stays fast.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from redline.cli.render import echo_fields
from redline.errors import VerificationError


@click.command("keygen")
@click.option("--out", "prefix", required=True, type=click.Path(path_type=Path),
              help="Path prefix: writes PREFIX.key (private, mode 0600) and PREFIX.pub.")
@click.option("--curve", type=click.Choice(["secp256r1", "secp384r1", "secp521r1"]),
              default="secp256r1", show_default=True)
@click.option("--json", "as_json", is_flag=True)
def keygen_command(prefix: Path, curve: str, as_json: bool) -> None:
    """Generate an elliptic-curve key pair for model signing; never overwrites."""
    from redline.vet.signing import generate_keypair

    pair = generate_keypair(prefix, curve)
    echo_fields({"private_key": str(pair.private_path), "public_key": str(pair.public_path),
                 "key_id": pair.key_id}, as_json)


@click.command("sign")
@click.argument("model_dir", type=click.Path(path_type=Path))
@click.option("--key", "key_path", required=True, type=click.Path(path_type=Path),
              help="Elliptic-curve private key (PEM), e.g. from `redline vet keygen`.")
@click.option("--signature", type=click.Path(path_type=Path),
              help="Signature file to write [default: MODEL_DIR/model.sig].")
@click.option("--ignore", "ignore", multiple=True, type=click.Path(path_type=Path),
              help="A path inside MODEL_DIR to leave unsigned (repeatable); the signature "
              "file and git metadata are always left out.")
@click.option("--force", is_flag=True, help="Replace an existing signature file.")
@click.option("--json", "as_json", is_flag=True)
def sign_command(
    model_dir: Path, key_path: Path, signature: Path | None, ignore: tuple[Path, ...],
    force: bool, as_json: bool,
) -> None:
    """Sign every file of MODEL_DIR (OpenSSF model-signing format, offline key signing)."""
    from redline.vet.signing import sign_model

    result = sign_model(model_dir, key_path, signature=signature, ignore=ignore, force=force)
    fields = result.model_dump(mode="json")
    if not as_json:
        fields["files"] = f"{len(result.files)} signed"
    echo_fields(fields, as_json)


@click.command("verify")
@click.argument("model_dir", type=click.Path(path_type=Path))
@click.option("--public-key", "public_key", required=True, type=click.Path(path_type=Path),
              help="The signer's elliptic-curve public key (PEM).")
@click.option("--signature", type=click.Path(path_type=Path),
              help="Signature file [default: MODEL_DIR/model.sig].")
@click.option("--json", "as_json", is_flag=True)
def verify_command(
    model_dir: Path, public_key: Path, signature: Path | None, as_json: bool
) -> None:
    """Check MODEL_DIR against its signature: every file must match its signed digest, and
    no file may be missing or unsigned. Exits 5 naming the files that differ."""
    from redline.vet.signing import check_model

    report = check_model(model_dir, public_key, signature=signature)
    if as_json:
        click.echo(json.dumps(report.model_dump(mode="json"), indent=2))
    elif report.verified:
        click.echo(f"verified  {report.model_dir}: {len(report.files)} files match "
                   f"{report.signature}")
        click.echo(f"subject   sha256:{report.subject_digest}")
        click.echo(f"key id    {report.key_id}")
    else:
        for problem in report.problems:
            click.echo(f"{problem.status.upper():<8}  {problem.path}")
    if not report.verified:
        raise VerificationError(report.error or "verification failed")
