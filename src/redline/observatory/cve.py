"""Export a published (or embargoed, for those allowed) report as a CVE JSON 5.1 record.

``taxonomyMappings`` carry the report's redline lexicon categories and, through the lexicon's
crosswalk, their MITRE ATLAS technique ids with the ATLAS version the mapping is for.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from redline.lexicon import load_lexicon
from redline.observatory.problems import Rejected
from redline.observatory.tables import VulnReport

#: Namespace for the stable UUIDs CVE records need for organisations.
ORG_NAMESPACE = uuid.UUID("6f1d1b8e-5a3c-4c0e-9a57-2d7f4f1c9e10")
LEXICON_TAXONOMY = "redline lexicon"
ATLAS_TAXONOMY = "MITRE ATLAS"
ATLAS_KEY = "mitre-atlas"


def org_uuid(slug: str) -> str:
    return str(uuid.uuid5(ORG_NAMESPACE, slug))


def taxonomy_mappings(categories: list[str]) -> list[dict[str, Any]]:
    lexicon = load_lexicon()
    lex_rel, atlas_rel, atlas_version = [], [], lexicon.framework(ATLAS_KEY).version
    for cat_id in categories:
        cat = lexicon.get(cat_id)
        lex_rel.append({"taxonomyId": cat.id, "relationshipName": "category",
                        "relationshipValue": cat.name})
        for m in cat.mappings_for(ATLAS_KEY):
            atlas_rel += [{"taxonomyId": tid, "relationshipName": m.relation,
                           "relationshipValue": cat.id} for tid in m.ids]
    mappings = [{"taxonomyName": LEXICON_TAXONOMY, "taxonomyVersion": lexicon.version,
                 "taxonomyRelations": lex_rel}]
    if atlas_rel:
        mappings.append({"taxonomyName": ATLAS_TAXONOMY, "taxonomyVersion": atlas_version,
                         "taxonomyRelations": atlas_rel})
    return mappings


def _affected(entry: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"vendor": entry["vendor"], "product": entry["product"],
                           "defaultStatus": "unknown"}
    if entry.get("version"):
        out["versions"] = [{"version": entry["version"], "status": "affected"}]
    else:
        out["defaultStatus"] = "affected"
    if entry.get("digest"):
        out["modules"] = [f"weights sha256:{entry['digest']}"]
    return out


def cve_record(report: VulnReport, *, assigner: str, reporter: str, report_url: str,
               now: datetime) -> dict[str, Any]:
    if report.cve_id is None:
        raise Rejected("cve_id", "no CVE id is assigned to this report (a coordinator sets "
                       "one at triage)", status=409)
    lexicon = load_lexicon()
    state = "PUBLISHED"
    cna: dict[str, Any] = {
        "providerMetadata": {"orgId": org_uuid(assigner), "shortName": assigner,
                             "dateUpdated": now.isoformat()},
        "title": report.title,
        "descriptions": [{"lang": "en", "value": report.description}],
        "affected": [_affected(a) for a in report.affected],
        "problemTypes": [{"descriptions": [
            {"lang": "en", "type": "text", "description": f"{c}: {lexicon.get(c).name}"}
            for c in report.categories]}],
        "references": [{"url": report_url, "name": "redline observatory report"}],
        "credits": [{"lang": "en", "value": reporter, "type": "finder"}],
        "timeline": [{"time": h["at"], "lang": "en", "value": h["action"]}
                     for h in report.history],
        "taxonomyMappings": taxonomy_mappings(list(report.categories)),
        "metrics": [{"format": "other", "scenarios": [{"lang": "en", "value": "GENERAL"}],
                     "other": {"type": "redline-severity",
                               "content": {"severity": report.severity}}}],
    }
    if report.published_at is not None:
        cna["datePublic"] = report.published_at.isoformat()
    return {
        "dataType": "CVE_RECORD",
        "dataVersion": "5.1",
        "cveMetadata": {"cveId": report.cve_id, "assignerOrgId": org_uuid(assigner),
                        "assignerShortName": assigner, "state": state,
                        **({"datePublished": report.published_at.isoformat()}
                           if report.published_at else {})},
        "containers": {"cna": cna},
    }
