"""Attestation ingest (verify, tamper, replay, disclosure bundles) and authorisation across
organisations, on SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

from redline.engine.runlog import read_runlog
from redline.evidence import reveal
from tests.observatory.conftest import Member, Observatory, Signed


def _register(obs: Observatory, who: Member, signed: Signed) -> None:
    r = obs.post(f"/api/orgs/{who.org}/signing-keys", who, {"public_pem": signed.public_pem})
    assert r.status_code == 201, r.text


def _reason(r: object) -> str:
    return r.json()["detail"]["reason"]  # type: ignore[attr-defined, no-any-return]


def test_valid_attestation_accepted_tampered_and_replayed_rejected(
        obs: Observatory, signed: Signed) -> None:
    alice = obs.member("lab-a", "reviewer")
    _register(obs, alice, signed)
    env = signed.envelope

    ok = obs.post("/api/attestations", alice, {"envelope": env})
    assert ok.status_code == 201, ok.text
    body = ok.json()
    assert body["org"] == "lab-a" and body["run_id"] == "run-observatory"
    assert len(body["digest"]) == 64

    replay = obs.post("/api/attestations", alice, {"envelope": env})
    assert replay.status_code == 409 and _reason(replay) == "replay"
    assert "your organisation" in replay.json()["detail"]["message"]

    statement = json.loads(base64.b64decode(env["payload"]))
    statement["predicate"]["metrics"]["totals"]["fail"] += 1
    tampered = dict(env, payload=base64.b64encode(json.dumps(statement).encode()).decode())
    r = obs.post("/api/attestations", alice, {"envelope": tampered})
    assert r.status_code == 422 and _reason(r) == "signature"
    assert "does not match" in r.json()["detail"]["message"]

    r = obs.post("/api/attestations", alice, {"envelope": {"payload": "x"}})
    assert r.status_code == 422 and _reason(r) == "malformed"


def test_attestation_signed_by_another_orgs_key_is_refused(
        obs: Observatory, signed: Signed) -> None:
    alice, bob = obs.member("lab-a", "reviewer"), obs.member("lab-b", "reviewer")
    _register(obs, alice, signed)
    r = obs.post("/api/attestations", bob, {"envelope": signed.envelope})
    assert r.status_code == 422 and _reason(r) == "unknown_key"
    # the replay check is global: B cannot re-submit A's attestation as its own either
    assert obs.post("/api/attestations", alice, {"envelope": signed.envelope}).status_code == 201


def test_disclosure_bundle_verified_against_the_stored_root(
        obs: Observatory, signed: Signed) -> None:
    alice = obs.member("lab-a", "reviewer")
    _register(obs, alice, signed)
    digest = obs.post("/api/attestations", alice, {"envelope": signed.envelope}).json()["digest"]
    bundle = reveal(read_runlog(signed.run_dir / "log.jsonl"), attestation=signed.attestation,
                    salts=signed.run_dir / "salts.json", random_k=3, seed="obs")
    data = bundle.model_dump(mode="json")
    r = obs.post(f"/api/attestations/{digest}/disclosures", alice, {"bundle": data})
    assert r.status_code == 201, r.text
    checks = {c["name"]: c["status"] for c in r.json()["checks"]}
    assert checks["disclosure.proofs"] == "pass" and checks["signature"] == "pass"
    assert r.json()["revealed"] == 3
    again = obs.post(f"/api/attestations/{digest}/disclosures", alice, {"bundle": data})
    assert again.status_code == 409 and _reason(again) == "replay"

    data["items"][0]["sample"]["outcome"] = "pass" if \
        data["items"][0]["sample"]["outcome"] == "fail" else "fail"
    bad = obs.post(f"/api/attestations/{digest}/disclosures", alice, {"bundle": data})
    assert bad.status_code == 422 and _reason(bad) == "disclosure"
    assert "disclosure.proofs" in bad.json()["detail"]["message"]
    assert obs.get(f"/api/attestations/{digest}", alice).json()["disclosures"] == 1


def _summary(guard: str, minute: int, checks: int = 100, blocked: int = 2) -> dict[str, object]:
    start = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=minute)
    return {"guard_id": guard, "policy_id": "idais", "policy_digest": "0" * 64,
            "window_start": start.isoformat(), "window_end": (start + timedelta(minutes=1))
            .isoformat(), "checks": checks,
            "counts": [{"red_line": "rl4-cyberattacks", "category": "CAT.CYBER",
                        "surface": "input", "decision": "flag", "count": blocked}],
            "excerpts": [{"red_line": "rl4-cyberattacks", "surface": "input",
                          "text": "secret prompt"}]}


def test_event_batches_are_idempotent_private_and_drop_excerpts(obs: Observatory) -> None:
    alice, bob = obs.member("lab-a"), obs.member("lab-b", share_excerpts=True)
    batch = {"summaries": [_summary("g1", i) for i in range(3)]}
    r = obs.post("/api/events", alice, batch)
    assert r.status_code == 200 and r.json()["accepted"] == 3 and r.json()["duplicates"] == 0
    again = obs.post("/api/events", alice, batch).json()
    assert again["accepted"] == 0 and again["duplicates"] == 3
    assert obs.post("/api/events", bob, {"summaries": [_summary("g1", 0)]}).json()[
        "accepted"] == 1

    mine = obs.get("/api/events", alice).json()
    assert len(mine) == 3 and all(s["excerpts"] == [] for s in mine)  # no opt-in: dropped
    theirs = obs.get("/api/events", bob).json()
    assert len(theirs) == 1 and theirs[0]["excerpts"][0]["text"] == "secret prompt"
    assert obs.get("/api/events").status_code == 401

    bad = _summary("g1", 9)
    bad["window_end"] = bad["window_start"]
    r = obs.post("/api/events", alice, {"summaries": [bad]})
    assert r.status_code == 422 and _reason(r) == "window"


def _report(vendor: str) -> dict[str, object]:
    return {"title": "System prompt <script>alert(1)</script> bypass",
            "description": "A multi-turn escalation gets cyber uplift.",
            "categories": ["CAT.CYBER", "SEC.JAILBREAK"],
            "affected": [{"vendor": vendor, "product": "chat-model", "version": "2.1"}],
            "severity": "high"}


def test_authorisation_across_organisations(obs: Observatory, signed: Signed) -> None:
    alice = obs.member("lab-a", "reviewer")
    bob = obs.member("lab-b")
    vendor = obs.member("vendor-c", "reviewer")
    coord = obs.member("cert", "coordinator")
    admin = obs.member("ops", "admin")
    _register(obs, alice, signed)
    digest = obs.post("/api/attestations", alice,
                      {"envelope": signed.envelope, "visibility": "org"}).json()["digest"]

    # an org-private attestation: B and the public cannot see it, a coordinator can
    assert obs.get(f"/api/attestations/{digest}", bob).status_code == 404
    assert obs.get(f"/api/attestations/{digest}").status_code == 404
    assert obs.get("/api/attestations", bob).json() == []
    assert obs.get(f"/api/attestations/{digest}", coord).status_code == 200
    assert obs.get("/api/riskmap").json()["models"] == []
    assert obs.get("/api/riskmap", alice).json()["models"] == ["scripted"]

    # an embargoed report: reporter, vendor and coordinator read it; B and the public don't
    rid = obs.post("/api/reports", alice, _report("vendor-c")).json()["id"]
    for who in (alice, vendor, coord):
        assert obs.get(f"/api/reports/{rid}", who).status_code == 200
    assert obs.get(f"/api/reports/{rid}", bob).status_code == 404
    assert obs.get(f"/api/reports/{rid}").status_code == 404
    assert obs.get("/api/reports", bob).json() == []
    assert obs.get("/api/reports").json() == []
    assert obs.get(f"/api/reports/{rid}/cve", bob).status_code == 404

    # roles are enforced server-side
    assert obs.post("/api/orgs", alice, {"slug": "new-org", "name": "N"}).status_code == 403
    assert obs.post("/api/orgs", admin, {"slug": "new-org", "name": "N"}).status_code == 201
    r = obs.post(f"/api/reports/{rid}/actions", bob, {"action": "triage"})
    assert r.status_code == 404  # B may not even see it
    r = obs.post(f"/api/reports/{rid}/actions", alice, {"action": "triage"})
    assert r.status_code == 403
    assert obs.post("/api/webhooks", bob, {"url": "http://127.0.0.1:9/x",
                                           "secret": "s" * 20}).status_code == 403

    # a revoked key gets 401; an unknown one too
    me = obs.get("/api/me", bob).json()
    key = obs.post(f"/api/members/{me['id']}/keys", admin, None).json()
    assert obs.get("/api/me", headers={"Authorization": f"Bearer {key['token']}"}
                   ).status_code == 200
    assert obs.post(f"/api/keys/{key['id']}/revoke", admin, None).json()["revoked"] is True
    r = obs.get("/api/me", headers={"Authorization": f"Bearer {key['token']}"})
    assert r.status_code == 401 and _reason(r) == "unauthorized"
    assert obs.get("/api/me", headers={"Authorization": "Bearer rlo_forged"}).status_code == 401


def test_request_size_limit(obs: Observatory) -> None:
    alice = obs.member("lab-a")
    big = {"summaries": [_summary("g", 0)], "pad": "x" * (3 * 1024 * 1024)}
    r = obs.post("/api/events", alice, big)
    assert r.status_code == 413 and _reason(r) == "too_large"
