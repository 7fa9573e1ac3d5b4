"""The dashboard in headless Chromium (Debian's build, driven by Playwright): log in, see the
risk map, watch an alert arrive live over SSE; everything rendered is escaped."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from playwright.sync_api import expect, sync_playwright

from tests.observatory.conftest import Member, Observatory, Signed
from tests.observatory.guardfeed import push, summaries_from_decisions
from tests.observatory.test_ingest_auth import _register, _report

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update"]
BLOCK = ("rl4-cyberattacks", "CAT.CYBER", "output", "block")


def lab_key_id(obs: Observatory, who: Member) -> int:
    from sqlalchemy import select

    from redline.observatory.auth import token_hash
    from redline.observatory.tables import ApiKey
    with obs.db.session() as s:
        key_id = s.scalar(select(ApiKey.id).where(ApiKey.token_hash == token_hash(who.token)))
    assert key_id is not None
    return key_id


def test_dashboard_login_risk_map_and_live_alert(obs: Observatory, signed: Signed,
                                                 tmp_path: Path) -> None:
    lab = obs.member("lab-a", "reviewer", name="Ada <b>Lovelace</b>")
    admin = obs.member("ops", "admin")
    _register(obs, lab, signed)
    assert obs.post("/api/attestations", lab, {"envelope": signed.envelope,
                                               "visibility": "members"}).status_code == 201
    rid = obs.post("/api/reports", lab, _report("lab-a")).json()["id"]
    shot = tmp_path / "dashboard.png"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            page = browser.new_page()
            dialogs: list[str] = []
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            page.goto(obs.url + "/")
            expect(page.locator("#who")).to_have_text("public view")
            expect(page.locator("#risk-map-empty")).to_be_visible()  # members-only attestation

            page.goto(obs.url + "/login")
            page.fill("#api-key", "rlo_wrong")
            page.click("#login-button")
            expect(page.locator("#login-error")).to_have_text("unknown or revoked API key")
            page.fill("#api-key", lab.token)
            page.click("#login-button")
            expect(page.locator("#who")).to_contain_text("lab-a")
            expect(page.locator("#who")).to_contain_text("Ada <b>Lovelace</b>")  # as text
            expect(page.locator("#risk-map tbody th")).to_have_text("scripted")
            expect(page.locator("#risk-map thead")).to_contain_text("CAT.CYBER")
            expect(page.locator("#reports")).to_contain_text(
                "System prompt <script>alert(1)</script> bypass")
            expect(page.locator("#reports td").first).to_have_text(str(rid))
            expect(page.locator("#feed-status")).to_have_text("live")
            assert page.locator("#alert-feed li").count() == 0

            push(obs.url, lab.token, summaries_from_decisions(
                "guard-ui", datetime(2026, 5, 1, tzinfo=UTC), timedelta(minutes=1),
                [[BLOCK, None]]))
            item = page.locator("#alert-feed li.new")
            expect(item).to_have_count(1)
            expect(item).to_contain_text("red line rl4-cyberattacks crossed")
            page.screenshot(path=str(shot), full_page=True)
            assert dialogs == []  # no injected script ran

            obs.post(f"/api/keys/{lab_key_id(obs, lab)}/revoke", admin, None)
            page.reload()  # a revoked key's cookie falls back to the public view
            expect(page.locator("#who")).to_have_text("public view")
        finally:
            browser.close()
    assert shot.stat().st_size > 10_000
