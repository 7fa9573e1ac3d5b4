"""Attestation ingest: verified on arrival against the submitting organisation's keys.

Refusal reasons: ``malformed`` (not a DSSE envelope), ``payload_type``, ``unknown_key`` (no
signature by a key the organisation registered), ``signature`` (the signature does not match:
a tampered payload), ``statement`` (not a redline statement), ``replay`` (this signed payload
was ingested before). Disclosure bundles attached later are checked with
``redline.evidence.verify_evidence`` against the stored envelope and root.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.serialization import load_pem_public_key
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from redline.evidence import dsse
from redline.evidence.canonical import canonical_digest
from redline.evidence.statement import PAYLOAD_TYPE, statement_from_payload
from redline.evidence.verify import VerifyReport, verify_evidence
from redline.observatory.auth import Principal
from redline.observatory.problems import Rejected
from redline.observatory.schemas import AttestationIn
from redline.observatory.tables import Attestation, Disclosure, SigningKey

#: The checks a disclosure bundle must pass (the run log checks need the full log: skipped).
DISCLOSURE_CHECKS = ("signature", "statement", "disclosure.attestation", "disclosure.root",
                     "disclosure.proofs")


def _org_keys(session: Session, org_id: int) -> dict[str, SigningKey]:
    rows = session.scalars(select(SigningKey).where(
        SigningKey.org_id == org_id, SigningKey.revoked_at.is_(None)))
    return {k.key_id: k for k in rows}


def _verify_signature(envelope: dsse.ParsedEnvelope, keys: dict[str, SigningKey]) -> str:
    signers = [kid for kid, _ in envelope.signatures if kid in keys]
    if not signers:
        named = ", ".join(kid[:16] or "(none)" for kid, _ in envelope.signatures)
        raise Rejected("unknown_key", f"signed by key(s) {named}, none of them registered to "
                       "this organisation")
    public = load_pem_public_key(keys[signers[0]].public_pem.encode("ascii"))
    try:
        return dsse.verify(envelope, public)  # type: ignore[arg-type]  # Ed25519 on register
    except ValueError as exc:
        raise Rejected("signature", f"signature check failed: {exc}") from None


def _replayed(existing: Attestation, principal: Principal) -> Rejected:
    whose = "your organisation" if existing.org_id == principal.org_id else "another organisation"
    return Rejected("replay", f"attestation {existing.digest[:16]}… was already ingested from "
                    f"{whose} at {existing.received_at.isoformat()}", status=409)


def ingest(session: Session, principal: Principal, body: AttestationIn) -> Attestation:
    try:
        envelope = dsse.parse(body.envelope)
    except dsse.EnvelopeError as exc:
        raise Rejected("malformed", f"not a DSSE envelope: {exc}") from None
    if envelope.payload_type != PAYLOAD_TYPE:
        raise Rejected("payload_type", f"payloadType is {envelope.payload_type!r}, "
                       f"not {PAYLOAD_TYPE!r}")
    kid = _verify_signature(envelope, _org_keys(session, principal.org_id))
    try:
        statement = statement_from_payload(envelope.payload)
    except ValueError as exc:
        raise Rejected("statement", f"not a redline statement: {exc}") from None
    existing = session.scalar(select(Attestation).where(Attestation.digest == envelope.digest))
    if existing is not None:
        raise _replayed(existing, principal)
    row = Attestation(org_id=principal.org_id, digest=envelope.digest, key_id=kid,
                      run_id=statement.predicate.run.id, model=statement.subject[0].name,
                      visibility=body.visibility, envelope=body.envelope,
                      statement=json.loads(envelope.payload))
    try:
        with session.begin_nested():
            session.add(row)
    except IntegrityError:
        raise Rejected("replay", "attestation was ingested concurrently", status=409) from None
    return row


def check_bundle(session: Session, row: Attestation, bundle: dict[str, Any]) -> VerifyReport:
    """Run the evidence verifier on the stored envelope, its key and the bundle."""
    key = session.scalar(select(SigningKey).where(SigningKey.key_id == row.key_id))
    assert key is not None  # a stored attestation's key stays (revocation only marks it)
    with tempfile.TemporaryDirectory(prefix="redline-obs-") as tmp:
        folder = Path(tmp)
        files = {"att.json": row.envelope, "bundle.json": bundle}
        for name, data in files.items():
            (folder / name).write_text(json.dumps(data), encoding="utf-8")
        (folder / "key.pub").write_text(key.public_pem, encoding="ascii")
        return verify_evidence(folder / "att.json", public_key=folder / "key.pub",
                               disclosure=folder / "bundle.json")


def attach_disclosure(session: Session, row: Attestation,
                      bundle: dict[str, Any]) -> tuple[Disclosure, VerifyReport]:
    report = check_bundle(session, row, bundle)
    failed = [c for c in report.checks if c.name in DISCLOSURE_CHECKS and c.status != "pass"]
    if failed:
        detail = "; ".join(f"{c.name}: {c.detail}" for c in failed)
        raise Rejected("disclosure", f"the bundle does not verify against the stored "
                       f"attestation: {detail}")
    digest = canonical_digest(bundle)
    if session.scalar(select(Disclosure).where(Disclosure.bundle_digest == digest)) is not None:
        raise Rejected("replay", "this disclosure bundle was attached before", status=409)
    items = bundle.get("items", [])
    disclosure = Disclosure(attestation_id=row.id, bundle_digest=digest, bundle=bundle,
                            revealed=len(items) if isinstance(items, list) else 0)
    session.add(disclosure)
    session.flush()
    return disclosure, report

