"""Sign and verify model directories in the OpenSSF model-signing format (``model_signing`` 1.x).

A signature is a Sigstore bundle holding a DSSE envelope over an in-toto Statement v1 with
predicate ``https://model_signing/signature/v1.0``: one subject (the directory's name and a
sha256 over all file digests, in path order) and one resource per file (path, sha256). Keys
are elliptic-curve (P-256, P-384, P-521) PEM files, so signing works offline: the bundle
carries a key hint, no certificate and no transparency-log entry. Anyone with the
``model_signing`` CLI can verify what this module signs, and the other way round.

Verification is the library's own: the signature over the statement, then every file of the
directory against its signed digest. When it fails, this module finds out why, most basic
cause first: a bundle naming another key, a signature that does not verify over the
statement (checked here by the DSSE v1 rules), and only then, against an authentic
statement, each file that was modified, is missing, or was added without being signed (an
added file is refused too: a loader may read it).

What a verified signature establishes: the bytes of every non-ignored file are those the key
holder signed. Not that the weights are free of backdoors, that templates and configs are
benign, or anything about the ignored paths (the signature file and ``.git`` metadata).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from model_signing import hashing, signing, verifying
from pydantic import BaseModel, ConfigDict

from redline.errors import InputError, VerificationError
from redline.evidence.keys import write_keypair_files

#: Default signature file, inside the signed directory (model-signing's default name too).
SIGNATURE_NAME = "model.sig"
PREDICATE_TYPE = "https://model_signing/signature/v1.0"
#: Curves model-signing accepts (those of Sigstore's protobuf specs).
CURVES: dict[str, type[ec.EllipticCurve]] = {
    "secp256r1": ec.SECP256R1,
    "secp384r1": ec.SECP384R1,
    "secp521r1": ec.SECP521R1,
}
#: The hash ECDSA uses on each curve, as model-signing pairs them.
_CURVE_HASH: dict[str, type[hashes.HashAlgorithm]] = {
    "secp256r1": hashes.SHA256,
    "secp384r1": hashes.SHA384,
    "secp521r1": hashes.SHA512,
}
#: Problems listed by name in an error message; the rest are counted.
_MAX_NAMED = 5

FileStatus = Literal["ok", "modified", "missing", "unsigned"]


class FileCheck(BaseModel):
    """One file against the signature: ``unsigned`` is present but not covered by it."""

    model_config = ConfigDict(extra="forbid")

    path: str
    status: FileStatus
    #: Hex sha256 in the signature (None for an unsigned file).
    expected: str | None = None
    #: Hex sha256 on disk (None for a missing file).
    actual: str | None = None


class SignatureReport(BaseModel):
    """The outcome of checking a directory against a signature and a public key."""

    model_config = ConfigDict(extra="forbid")

    model_dir: str
    signature: str
    public_key: str
    #: sha256 of the public key's PEM, as model-signing records it in the bundle.
    key_id: str
    #: The key id the bundle names (unauthenticated: it only explains a failure).
    signer_key_id: str | None = None
    verified: bool
    predicate_type: str | None = None
    subject_name: str | None = None
    #: The statement's subject digest: one id for the whole signed directory.
    subject_digest: str | None = None
    ignore_paths: list[str] = []
    files: list[FileCheck] = []
    #: Why verification failed; names the files that differ when that is the reason.
    error: str | None = None

    @property
    def problems(self) -> list[FileCheck]:
        return [f for f in self.files if f.status != "ok"]


class SignResult(BaseModel):
    """What ``sign_model`` wrote and covered."""

    model_config = ConfigDict(extra="forbid")

    model_dir: str
    signature: str
    key_id: str
    subject_digest: str
    files: list[str]
    ignore_paths: list[str]


@dataclass(frozen=True)
class KeyPair:
    private_path: Path
    public_path: Path
    key_id: str


class SignatureRequirement(BaseModel):
    """A model directory must verify against this key before it is used (e.g. loaded)."""

    model_config = ConfigDict(extra="forbid")

    public_key: Path
    #: Default: ``model.sig`` inside the directory being checked.
    signature: Path | None = None

    def check_key(self) -> None:
        """Fail early, with ``InputError``, on a key file that could never verify anything."""
        load_public_key(self.public_key)

    def verify(self, model_dir: Path) -> SignatureReport:
        return verify_model(model_dir, self.public_key, signature=self.signature)


# --- keys ------------------------------------------------------------------------------------


def key_id(public_key: ec.EllipticCurvePublicKey) -> str:
    pem = public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(pem).hexdigest()


def _read_key_file(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"no {what} file", file=path) from None
    except OSError as exc:
        raise InputError(f"cannot read the {what}: {exc.strerror}", file=path) from None


def _check_curve(key: object, path: Path, what: str) -> None:
    curve = getattr(key, "curve", None)
    if curve is None:
        raise InputError(
            f"expected an elliptic-curve {what} ({', '.join(CURVES)}), found "
            f"{type(key).__name__}; make one with `redline vet keygen`",
            file=path,
        )
    if curve.name not in CURVES:
        raise InputError(
            f"curve {curve.name} is not supported by model signing; use one of "
            f"{', '.join(CURVES)}",
            file=path,
        )


def load_private_key(path: Path) -> ec.EllipticCurvePrivateKey:
    data = _read_key_file(path, "private key")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise InputError(f"not an unencrypted PEM private key: {exc}", file=path) from None
    _check_curve(key, path, "private key")
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return key


def load_public_key(path: Path) -> ec.EllipticCurvePublicKey:
    data = _read_key_file(path, "public key")
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise InputError(f"not a PEM public key: {exc}", file=path) from None
    _check_curve(key, path, "public key")
    assert isinstance(key, ec.EllipticCurvePublicKey)
    return key


def generate_keypair(prefix: Path, curve: str = "secp256r1") -> KeyPair:
    """Write ``PREFIX.key`` (PKCS#8 PEM, mode 0600) and ``PREFIX.pub``; never overwrites."""
    if curve not in CURVES:
        raise InputError(f"unknown curve {curve!r}; use one of {', '.join(CURVES)}")
    private = ec.generate_private_key(CURVES[curve]())
    private_path, public_path = write_keypair_files(
        prefix,
        private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()),
        private.public_key().public_bytes(serialization.Encoding.PEM,
                                          serialization.PublicFormat.SubjectPublicKeyInfo),
    )
    return KeyPair(private_path, public_path, key_id(private.public_key()))


# --- statements ------------------------------------------------------------------------------


def read_bundle(signature: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """The bundle in a signature file and the in-toto Statement inside it, decoded but NOT
    authenticated: use them to describe a signature, or to explain a failed verification."""
    try:
        bundle = json.loads(signature.read_text(encoding="utf-8"))
        payload = base64.b64decode(bundle["dsseEnvelope"]["payload"], validate=True)
        statement = json.loads(payload)
    except (OSError, UnicodeDecodeError, ValueError, binascii.Error, KeyError, TypeError) as exc:
        raise VerificationError(
            f"{signature}: not a model-signing bundle ({type(exc).__name__}: {exc})"
        ) from None
    if not isinstance(statement, dict):
        raise VerificationError(f"{signature}: the bundle's payload is not an in-toto Statement")
    return bundle, statement


def _signed_files(statement: dict[str, Any], signature: Path) -> dict[str, str]:
    """Path → hex digest from a v1.0 statement's resources."""
    if statement.get("predicateType") != PREDICATE_TYPE:
        raise VerificationError(
            f"{signature}: predicate type {statement.get('predicateType')!r} is not "
            f"{PREDICATE_TYPE}"
        )
    try:
        return {str(r["name"]): str(r["digest"]) for r in statement["predicate"]["resources"]}
    except (KeyError, TypeError) as exc:
        raise VerificationError(f"{signature}: malformed resources ({exc})") from None


def _ignore_paths(serialization_args: dict[str, Any]) -> list[str]:
    paths = serialization_args.get("ignore_paths")
    return sorted(str(p) for p in paths) if isinstance(paths, list) else []


def _dig(value: Any, *keys: str) -> Any:
    """``value[k1][k2]…``, or None where a level is missing or not a mapping."""
    for key in keys:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _serialization(statement: dict[str, Any]) -> dict[str, Any]:
    value = _dig(statement, "predicate", "serialization")
    return value if isinstance(value, dict) else {}


# --- signing ---------------------------------------------------------------------------------


def _inside(path: Path, root: Path) -> str | None:
    """``path`` relative to ``root`` as POSIX text, or None when it lies outside."""
    try:
        return path.resolve().relative_to(root).as_posix()
    except ValueError:
        return None


def _model_dir(model_dir: Path) -> Path:
    if not model_dir.is_dir():
        raise InputError("not a directory: sign and verify whole model directories",
                         file=model_dir)
    return model_dir.resolve()


def sign_model(
    model_dir: Path,
    private_key: Path,
    *,
    signature: Path | None = None,
    ignore: Iterable[Path] = (),
    force: bool = False,
) -> SignResult:
    """Sign every file under ``model_dir`` except the signature itself, ``ignore`` (paths
    relative to the directory, or inside it) and git metadata."""
    root = _model_dir(model_dir)
    sig = (signature or root / SIGNATURE_NAME).absolute()
    if sig.exists() and not force:
        raise InputError("refusing to overwrite an existing signature (use --force)", file=sig)
    key = load_private_key(private_key)
    ignored: list[str] = []
    for path in (sig, *ignore):
        relative = _inside(path if path.is_absolute() else root / path, root)
        if relative is None:
            if path is sig:
                continue  # a signature kept outside the directory needs no ignore entry
            raise InputError("ignored path is outside the model directory", file=path)
        ignored.append(relative)
    # model_signing's Config constructors lack annotations, hence the ignores on them.
    hashing_config = hashing.Config()  # type: ignore[no-untyped-call]
    hashing_config.set_ignored_paths(paths=ignored, ignore_git_paths=True)
    signer = signing.Config()  # type: ignore[no-untyped-call]
    signer.use_elliptic_key_signer(private_key=private_key).set_hashing_config(hashing_config)
    try:
        signer.sign(root, sig)
    except ValueError as exc:  # e.g. a symlink inside the directory
        raise InputError(f"cannot sign: {exc}", file=root) from None
    _, statement = read_bundle(sig)
    return SignResult(
        model_dir=str(root),
        signature=str(sig),
        key_id=key_id(key.public_key()),
        subject_digest=statement["subject"][0]["digest"]["sha256"],
        files=sorted(_signed_files(statement, sig)),
        ignore_paths=_ignore_paths(_serialization(statement)),
    )


# --- verification ----------------------------------------------------------------------------


def _envelope_verifies(bundle: dict[str, Any], key: ec.EllipticCurvePublicKey) -> bool:
    """Whether the DSSE envelope's first signature is ``key``'s over the payload (DSSE v1
    pre-authentication encoding, ECDSA with the curve's hash, as model-signing signs)."""
    envelope = bundle.get("dsseEnvelope")
    if not isinstance(envelope, dict):
        return False
    try:
        payload_type = str(envelope["payloadType"]).encode()
        payload = base64.b64decode(envelope["payload"], validate=True)
        signature = base64.b64decode(envelope["signatures"][0]["sig"], validate=True)
    except (KeyError, IndexError, TypeError, ValueError, binascii.Error):
        return False
    pae = b"DSSEv1 %d %b %d %b" % (len(payload_type), payload_type, len(payload), payload)
    try:
        key.verify(signature, pae, ec.ECDSA(_CURVE_HASH[key.curve.name]()))
    except InvalidSignature:
        return False
    return True


def _actual_files(root: Path, serialization_args: dict[str, Any]) -> dict[str, str]:
    """Path → hex digest of the directory, hashed the way the signature was (the same
    serialization, algorithm and ignore list), through model-signing itself."""
    algorithm = serialization_args.get("hash_type", "sha256")
    symlinks = bool(serialization_args.get("allow_symlinks", False))
    config = hashing.Config()  # type: ignore[no-untyped-call]
    if serialization_args.get("method") == "shards":
        config.use_shard_serialization(hashing_algorithm=algorithm, allow_symlinks=symlinks,
                                       shard_size=int(serialization_args["shard_size"]))
    else:
        config.use_file_serialization(hashing_algorithm=algorithm, allow_symlinks=symlinks)
    config.set_ignored_paths(paths=_ignore_paths(serialization_args))
    manifest = config.hash(root)
    return {str(rd.identifier): rd.digest.digest_hex for rd in manifest.resource_descriptors()}


def compare_files(signed: dict[str, str], actual: dict[str, str]) -> list[FileCheck]:
    """Every path of either side with its status, sorted by path."""
    checks: list[FileCheck] = []
    for path in sorted(signed.keys() | actual.keys()):
        expected, found = signed.get(path), actual.get(path)
        if expected is None:
            status: FileStatus = "unsigned"
        elif found is None:
            status = "missing"
        else:
            status = "ok" if expected == found else "modified"
        checks.append(FileCheck(path=path, status=status, expected=expected, actual=found))
    return checks


_STATUS_TEXT: dict[FileStatus, str] = {
    "ok": "ok",
    "modified": "modified (its sha256 differs from the signed one)",
    "missing": "missing",
    "unsigned": "not covered by the signature",
}


def describe_problems(root: Path, signature: Path, problems: list[FileCheck]) -> str:
    named = "; ".join(f"{p.path}: {_STATUS_TEXT[p.status]}" for p in problems[:_MAX_NAMED])
    more = f"; and {len(problems) - _MAX_NAMED} more" if len(problems) > _MAX_NAMED else ""
    count = "1 file differs" if len(problems) == 1 else f"{len(problems)} files differ"
    return f"{root}: {count} from signature {signature}: {named}{more}"


def check_model(
    model_dir: Path, public_key: Path, *, signature: Path | None = None
) -> SignatureReport:
    """Check ``model_dir`` against a signature; a failed check is a report with
    ``verified=False`` and its reason, a bad directory or key file an ``InputError``."""
    root = _model_dir(model_dir)
    key = load_public_key(public_key)
    sig = (signature or root / SIGNATURE_NAME).absolute()
    report = SignatureReport(model_dir=str(root), signature=str(sig),
                             public_key=str(public_key), key_id=key_id(key), verified=False)
    if not sig.is_file():
        report.error = (
            f"{root}: no signature at {sig}; the model is unsigned (sign it with "
            "`redline vet sign`, or name the signature file)"
        )
        return report
    try:
        bundle, statement = read_bundle(sig)
        signed = _signed_files(statement, sig)
    except VerificationError as exc:
        report.error = str(exc)
        return report
    report.signer_key_id = _text(_dig(bundle, "verificationMaterial", "publicKey", "hint"))
    subjects = statement.get("subject")
    subject = subjects[0] if isinstance(subjects, list) and subjects else None
    serialization_args = _serialization(statement)
    report.predicate_type = statement.get("predicateType")
    report.subject_name = _text(_dig(subject, "name"))
    report.subject_digest = _text(_dig(subject, "digest", "sha256"))
    report.ignore_paths = _ignore_paths(serialization_args)
    try:
        verifier = verifying.Config()  # type: ignore[no-untyped-call]
        verifier.use_elliptic_key_verifier(public_key=public_key).verify(root, sig)
    except (ValueError, KeyError, TypeError, InvalidSignature) as exc:
        failure = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    else:
        report.verified = True
        report.files = [FileCheck(path=p, status="ok", expected=d, actual=d)
                        for p, d in sorted(signed.items())]
        return report
    # Explain the failure, most basic cause first; the file list only means something once
    # the statement is known to be the signer's.
    if report.signer_key_id is not None and report.signer_key_id != report.key_id:
        report.error = (
            f"{sig}: signed with another key (key id {report.signer_key_id[:16]}…), not "
            f"{public_key} (key id {report.key_id[:16]}…)"
        )
        return report
    if not _envelope_verifies(bundle, key):
        report.error = (
            f"{sig}: the signature does not verify with public key {public_key}: the signed "
            "statement was altered, or signed with another key"
        )
        return report
    try:
        report.files = compare_files(signed, _actual_files(root, serialization_args))
    except ValueError as exc:  # e.g. a symlink appeared in the directory
        report.error = f"{root}: cannot hash the directory: {exc}"
        return report
    if report.problems:
        report.error = describe_problems(root, sig, report.problems)
    else:
        report.error = f"{sig}: verification failed ({failure.strip()})"
    return report


def verify_model(
    model_dir: Path, public_key: Path, *, signature: Path | None = None
) -> SignatureReport:
    """``check_model``, raising ``VerificationError`` (exit 5) with its reason on failure."""
    report = check_model(model_dir, public_key, signature=signature)
    if not report.verified:
        raise VerificationError(report.error or "verification failed")
    return report
