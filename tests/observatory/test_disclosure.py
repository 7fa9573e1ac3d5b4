"""Coordinated disclosure (embargo, workflow, CVE JSON 5.1 export with lexicon and ATLAS
mappings) and incidents with the EU Code of Practice deadlines."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import requests

from redline.observatory.incidents import deadlines
from tests.observatory.conftest import Observatory
from tests.observatory.test_ingest_auth import _reason, _report


def test_disclosure_workflow_embargo_and_cve_export(obs: Observatory) -> None:
    reporter = obs.member("lab-a")
    vendor = obs.member("vendor-c", "reviewer")
    coord = obs.member("cert", "coordinator")
    outsider = obs.member("lab-b", "reviewer")
    report = obs.post("/api/reports", reporter, _report("vendor-c")).json()
    rid = report["id"]
    assert report["state"] == "reported" and report["embargo_days"] == 90

    def act(who: object, action: str, **extra: object) -> object:
        return obs.post(f"/api/reports/{rid}/actions", who, {"action": action, **extra})

    assert act(vendor, "triage").status_code == 403
    assert act(coord, "notify").status_code == 409  # not triaged yet
    r = act(coord, "triage", embargo_days=30, cve_id="CVE-2026-123456")
    assert r.status_code == 200 and r.json()["embargo_days"] == 30
    r = act(coord, "notify").json()
    assert r["state"] == "vendors_notified"
    until = datetime.fromisoformat(r["embargo_until"])
    assert timedelta(days=29) < until - datetime.now(UTC) <= timedelta(days=30)
    p = act(coord, "publish")
    assert p.status_code == 409 and _reason(p) == "embargo"
    assert act(outsider, "fix").status_code == 404  # cannot see it at all
    assert act(vendor, "fix").json()["state"] == "fixed"
    assert obs.get("/api/reports").json() == []  # still unpublished

    cve = obs.get(f"/api/reports/{rid}/cve", vendor).json()
    assert cve["dataType"] == "CVE_RECORD" and cve["dataVersion"] == "5.1"
    assert cve["cveMetadata"]["cveId"] == "CVE-2026-123456"
    cna = cve["containers"]["cna"]
    assert cna["affected"][0]["vendor"] == "vendor-c"
    assert cna["affected"][0]["versions"] == [{"version": "2.1", "status": "affected"}]
    maps = {m["taxonomyName"]: m for m in cna["taxonomyMappings"]}
    assert [r["taxonomyId"] for r in maps["redline lexicon"]["taxonomyRelations"]] == [
        "CAT.CYBER", "SEC.JAILBREAK"]
    atlas = {r["taxonomyId"] for r in maps["MITRE ATLAS"]["taxonomyRelations"]}
    assert "AML.T0102" in atlas and maps["MITRE ATLAS"]["taxonomyVersion"]
    assert [t["value"] for t in cna["timeline"]] == ["report", "triage", "notify", "fix"]

    assert act(coord, "publish").json()["state"] == "published"
    public = obs.get("/api/reports").json()
    assert [r["id"] for r in public] == [rid]
    assert obs.get(f"/api/reports/{rid}/cve").json()["cveMetadata"]["datePublished"]
    assert act(coord, "publish").status_code == 409


def test_unknown_category_and_vendor_are_refused(obs: Observatory) -> None:
    lab = obs.member("lab-a")
    bad = _report("lab-a") | {"categories": ["CAT.NOPE"]}
    r = obs.post("/api/reports", lab, bad)
    assert r.status_code == 422 and "CAT.NOPE" in r.text
    r = obs.post("/api/reports", lab, _report("no-such-vendor"))
    assert r.status_code == 404


def test_incident_deadlines_follow_the_code_of_practice(obs: Observatory) -> None:
    lab, coord, other = obs.member("lab-a"), obs.member("cert", "coordinator"), \
        obs.member("lab-b")
    aware = datetime.now(UTC) - timedelta(days=1)
    body = {"title": "Weights exfiltrated by an agent", "harm_class": "cybersecurity",
            "aware_at": aware.isoformat(),
            "fields": {"start_date": (aware - timedelta(hours=5)).isoformat(),
                       "harm": "model weights copied", "affected": "the provider",
                       "chain_of_events": "agent escalated privileges", "model": "m-1"}}
    r = obs.post("/api/incidents", lab, body)
    assert r.status_code == 201, r.text
    due = r.json()["deadlines"]
    assert datetime.fromisoformat(due["initial_report_due"]) == aware + timedelta(days=5)
    assert datetime.fromisoformat(due["next_intermediate_due"]) == \
        aware + timedelta(days=5, weeks=4)
    assert len(obs.get("/api/incidents", coord).json()) == 1
    assert obs.get("/api/incidents", other).json() == []
    missing = dict(body, fields={"harm": "x"})
    assert obs.post("/api/incidents", lab, missing).status_code == 422


def _incident(title: str, **sharing: Any) -> dict[str, Any]:
    aware = datetime.now(UTC) - timedelta(hours=2)
    return {"title": title, "harm_class": "serious_harm", "aware_at": aware.isoformat(),
            "fields": {"start_date": aware.isoformat(), "harm": "h", "affected": "a",
                       "chain_of_events": "c", "model": "m-1"}, **sharing}


def test_incidents_are_shared_by_their_tlp_label(obs: Observatory) -> None:
    lab = obs.member("lab-a", "reviewer")
    partner, bystander = obs.member("lab-b", "reviewer"), obs.member("lab-c")
    coord = obs.member("cert", "coordinator")

    def readers(title: str) -> set[str]:
        who = {"lab-a": lab, "lab-b": partner, "lab-c": bystander, "cert": coord}
        seen = {name for name, m in who.items()
                if title in {i["title"] for i in obs.get("/api/incidents", m).json()}}
        public = obs.get("/api/incidents").json()
        return seen | ({"public"} if title in {i["title"] for i in public} else set())

    red = obs.post("/api/incidents", lab, _incident("red one"))
    assert red.status_code == 201 and red.json()["tlp"] == "RED"
    assert readers("red one") == {"lab-a", "cert"}

    amber = obs.post("/api/incidents", lab, _incident(
        "amber one", tlp="AMBER+STRICT", share_with=["lab-b"]))
    assert amber.status_code == 201 and amber.json()["share_with"] == ["lab-b"]
    assert readers("amber one") == {"lab-a", "lab-b", "cert"}

    # Widened by the reporting organisation: GREEN reaches every member, CLEAR everyone.
    incident_id = amber.json()["id"]
    path = f"{obs.url}/api/incidents/{incident_id}/sharing"
    assert requests.put(path, json={"tlp": "GREEN"}, headers=partner.headers,
                        timeout=30).status_code == 404  # not lab-b's to relabel
    r = requests.put(path, json={"tlp": "GREEN"}, headers=lab.headers, timeout=30)
    assert r.status_code == 200 and (r.json()["tlp"], r.json()["share_with"]) == ("GREEN", [])
    assert readers("amber one") == {"lab-a", "lab-b", "lab-c", "cert"}
    requests.put(path, json={"tlp": "CLEAR"}, headers=lab.headers, timeout=30)
    assert readers("amber one") == {"lab-a", "lab-b", "lab-c", "cert", "public"}
    requests.put(path, json={"tlp": "RED"}, headers=lab.headers, timeout=30)
    assert readers("amber one") == {"lab-a", "cert"}

    # A label and an audience that do not fit together, or an unknown organisation.
    for bad, status in (({"tlp": "GREEN", "share_with": ["lab-b"]}, 422),
                        ({"tlp": "AMBER"}, 422), ({"tlp": "PINK"}, 422),
                        ({"tlp": "AMBER", "share_with": ["no-such-org"]}, 404)):
        r = obs.post("/api/incidents", lab, _incident("bad", **bad))
        assert r.status_code == status, (bad, r.text)
    assert "bad" not in {i["title"] for i in obs.get("/api/incidents", lab).json()}

    # The dashboard shows the label with each incident the viewer may read.
    page = requests.get(obs.url + "/", headers=partner.headers, timeout=30).text
    assert "TLP:" not in page.split('id="incidents"')[1].split("</table>")[0]
    page = requests.get(obs.url + "/", headers=lab.headers, timeout=30).text
    assert page.count("TLP:RED") == 2


def test_deadline_table() -> None:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    days = {k: (deadlines(k, t0, None, t0).initial_report_due - t0).days
            for k in ("critical_infrastructure", "cybersecurity", "death", "serious_harm")}
    assert days == {"critical_infrastructure": 2, "cybersecurity": 5, "death": 10,
                    "serious_harm": 15}
    resolved = deadlines("death", t0, t0 + timedelta(days=3), t0 + timedelta(days=100))
    assert resolved.final_report_due == t0 + timedelta(days=63)
    assert resolved.next_intermediate_due is None
    late = deadlines("death", t0, None, t0 + timedelta(days=50))
    assert late.next_intermediate_due == t0 + timedelta(days=10 + 56)
