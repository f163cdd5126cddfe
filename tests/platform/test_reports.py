"""The report in the browser and the stimulus gallery: a member runs the analysis from the dashboard in the
background, follows its progress, opens the report, and is told when newer answers have arrived."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from test_researcher import account, signed_in

from culturelab.platform.bots import StudyKnowledge, run_bots
from culturelab.platform.db import session_scope

from bot import Bot, FlaskTransport


def test_the_gallery_shows_every_stimulus_by_culture_with_its_metadata(app, load):
    slug = load()
    account(app, "ada@example.org", slug)
    browser = signed_in(app, "ada@example.org")
    page = browser.get(f"/researcher/studies/{slug}/stimuli").get_data(as_text=True)
    sections = re.findall(r'id="culture-([a-z_]+)"', page)
    assert sections == sorted(sections) == ["girih", "kente", "meander", "seigaiha"]
    assert page.count("<li>") == 24 and "kente-0005" in page and "cgan, seed 5" in page
    image = re.search(r'src="(/researcher/studies/[^"]+\.png)"', page).group(1)
    r = browser.get(image)
    assert r.status_code == 200 and r.mimetype == "image/png"


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_analysis_runs_in_the_background_and_its_report_opens(app, load):
    slug = load()
    with session_scope(app) as session:
        knowledge = StudyKnowledge.from_database(session, slug, Path(app.config["MEDIA_DIR"]))
    tally, _ = run_bots(lambda: FlaskTransport(app.test_client()), knowledge, 16, in_group_d=1.0, concurrency=1)
    assert tally.completed == 16
    account(app, "ada@example.org", slug)
    browser = signed_in(app, "ada@example.org")
    assert browser.get(f"/researcher/studies/{slug}/report").status_code == 404  # none yet
    assert "Analyse the current data" in browser.get("/researcher/").get_data(as_text=True)

    assert browser.post(f"/researcher/studies/{slug}/report").status_code == 302
    status = browser.get(f"/researcher/studies/{slug}/report/status").get_json()
    assert status["state"] == "running"
    assert 'data-report="running"' in browser.get("/researcher/").get_data(as_text=True)
    deadline = time.monotonic() + 240
    while status["state"] == "running" and time.monotonic() < deadline:
        time.sleep(1)
        status = browser.get(f"/researcher/studies/{slug}/report/status").get_json()
    assert status["state"] == "ready", status
    assert status["responses"] == 16 * 14 and not status["stale"]

    report = browser.get(f"/researcher/studies/{slug}/report")
    assert report.status_code == 200 and "Pattern preferences" in report.get_data(as_text=True)
    assert "sandbox" in report.headers["Content-Security-Policy"]

    # A new answer makes the report out of date, and the dashboard says so.
    late = Bot(app.test_client(), slug)
    late.consent(), late.background()
    late.answer(late.next()["trial"])
    status = browser.get(f"/researcher/studies/{slug}/report/status").get_json()
    assert status["stale"] and status["responses_now"] == 16 * 14 + 1
    assert "data-stale" in browser.get("/researcher/").get_data(as_text=True)
