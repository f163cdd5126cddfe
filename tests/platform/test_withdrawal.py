"""Withdrawal (by the participant, with their code) and deletion (by the study's owner): the data leave every
later export, and the audit log says who did it."""

from __future__ import annotations

import csv
import html as htmllib
import re

from sqlalchemy import func, select
from test_researcher import account, signed_in

from culturelab.platform.db import session_scope
from culturelab.platform.export import export_study
from culturelab.platform.models import AuditEvent, Participant, Response, Trial

from bot import Bot

PERSONAL_CODES = {"recruitment": {"quotas": {"east_asian": 50, "west_african": 50}}}


def exported(app, slug, tmp_path) -> tuple[set[str], int]:
    """The participant ids in a fresh CSV export, and its number of responses."""
    out = tmp_path / "export"
    with session_scope(app) as session:
        export_study(session, slug, out, "csv")
    with (out / "participants.csv").open() as f:
        ids = {row["participant_id"] for row in csv.DictReader(f)}
    with (out / "responses.csv").open() as f:
        return ids, sum(1 for _ in csv.DictReader(f))


def pseudonym(app, token: str) -> str:
    with session_scope(app) as session:
        return session.scalar(select(Participant.pseudonym).where(Participant.token == token))


def test_the_completion_page_links_to_withdrawal_and_the_data_leave_exports(app, client, load, tmp_path):
    slug = load()
    stays, leaves = Bot(client, slug), Bot(client, slug)
    stays.complete(), leaves.complete()
    ids, n_responses = exported(app, slug, tmp_path)
    assert pseudonym(app, leaves.token) in ids and n_responses == 28
    done = client.get(f"/p/{leaves.token}").get_data(as_text=True)
    link = htmllib.unescape(re.search(r'<a href="([^"]+)" id="withdraw-link"', done).group(1))
    assert link.startswith("/withdraw?")
    form = client.get(link).get_data(as_text=True)
    assert f'value="{leaves.token}"' in form  # the personal code is filled in: one click withdraws
    r = client.post("/withdraw", data={"code": leaves.token})
    assert r.status_code == 200 and 'data-outcome="withdrawn"' in r.get_data(as_text=True)
    ids, n_responses = exported(app, slug, tmp_path)
    assert ids == {pseudonym(app, stays.token)} and n_responses == 14
    with session_scope(app) as session:
        gone = session.scalar(select(Participant).where(Participant.token == leaves.token))
        assert (gone.status, gone.age, gone.gender, gone.country_of_birth) == ("withdrawn", None, None, None)
        assert session.scalar(select(func.count()).select_from(Response).where(Response.participant_id == gone.id)) == 0
        assert session.scalar(select(func.count()).select_from(Trial).where(Trial.participant_id == gone.id)) == 0
        (event,) = session.scalars(select(AuditEvent).where(AuditEvent.action == "participant.withdraw")).all()
        assert (event.actor, event.detail) == ("participant", {"participant_id": gone.pseudonym})
    # The participation has ended for the API too, and withdrawing again changes nothing.
    assert client.get(f"/api/v1/participants/{leaves.token}/next").status_code == 409
    assert client.post("/withdraw", data={"code": leaves.token}).status_code == 200
    with session_scope(app) as session:
        assert session.scalar(select(func.count()).select_from(AuditEvent)) == 1


def test_withdrawal_later_with_a_personal_completion_code(app, client, load, tmp_path):
    slug = load(**PERSONAL_CODES)
    bot = Bot(client, slug)
    bot.complete()
    with session_scope(app) as session:
        code = session.scalar(select(Participant.completion_code).where(Participant.token == bot.token))
    assert re.fullmatch(r"[0-9A-F]{8}", code)
    assert client.post("/withdraw", data={"code": code.lower()}).status_code == 200
    assert exported(app, slug, tmp_path) == (set(), 0)


def test_a_code_shared_by_the_whole_study_or_unknown_withdraws_nobody(app, client, load, tmp_path):
    slug = load()  # every participant is given the study's completion code C1234ABC
    Bot(client, slug).complete()
    for code in ("C1234ABC", "NOT-A-CODE"):
        r = client.post("/withdraw", data={"code": code})
        assert r.status_code == 404 and "No participation has this code" in r.get_data(as_text=True)
    assert client.post("/withdraw", data={"code": ""}).status_code == 400
    assert exported(app, slug, tmp_path)[1] == 14


def test_the_withdrawal_page_speaks_chinese(client):
    html = client.get("/withdraw?lang=zh").get_data(as_text=True)
    assert "退出研究" in html and 'lang="zh"' in html
    assert "Withdraw from a study" in client.get("/withdraw").get_data(as_text=True)


def test_guessing_codes_is_throttled_for_all_processes(app, load):
    app.config.update(RATELIMIT_ENABLED=True, WITHDRAW_LIMIT="3/minute")
    load()
    clients = [app.test_client() for _ in range(4)]  # new connections and no cookies: the address counts
    statuses = [c.post("/withdraw", data={"code": f"GUESS{i}"}).status_code for i, c in enumerate(clients)]
    assert statuses == [404, 404, 404, 429]


def test_the_owner_deletes_a_participant_with_a_csrf_protected_form(app, load, tmp_path):
    slug = load()
    keep, drop = Bot(app.test_client(), slug), Bot(app.test_client(), slug)
    keep.complete(), drop.complete()
    account(app, "ada@example.org", slug)
    app.config["WTF_CSRF_ENABLED"] = True
    ada = app.test_client()
    page = ada.get("/researcher/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
    login = {"email": "ada@example.org", "password": "a long enough password", "csrf_token": token}
    assert ada.post("/researcher/login", data=login).status_code == 302
    target = pseudonym(app, drop.token)
    url = f"/researcher/studies/{slug}/participants/delete"
    assert ada.post(url, data={"participant_id": target}).status_code == 400  # no CSRF token
    assert target in exported(app, slug, tmp_path)[0]
    dashboard = ada.get("/researcher/").get_data(as_text=True)
    token = re.search(r'class="delete-participant">\s*<input id="csrf_token" name="csrf_token" type="hidden" '
                      r'value="([^"]+)"', dashboard).group(1)
    r = ada.post(url, data={"participant_id": target, "csrf_token": token}, follow_redirects=True)
    assert f"Participant {target} and all their data were deleted." in r.get_data(as_text=True)
    assert exported(app, slug, tmp_path) == ({pseudonym(app, keep.token)}, 14)
    r = ada.post(url, data={"participant_id": target, "csrf_token": token}, follow_redirects=True)
    assert f"This study has no participant {target}." in r.get_data(as_text=True)
    with session_scope(app) as session:
        (event,) = session.scalars(select(AuditEvent).where(AuditEvent.action == "participant.delete")).all()
        assert (event.actor, event.detail) == ("ada@example.org", {"participant_id": target})
    assert 'data-action="participant.delete"' in ada.get("/researcher/").get_data(as_text=True)


def test_only_owners_delete(app, load):
    slug = load()
    bot = Bot(app.test_client(), slug)
    bot.complete()
    account(app, "carl@example.org", slug, role="collaborator")
    r = signed_in(app, "carl@example.org").post(
        f"/researcher/studies/{slug}/participants/delete", data={"participant_id": pseudonym(app, bot.token)}
    )
    assert r.status_code == 404


def test_the_withdrawal_form_is_csrf_protected(app, load):
    slug = load()
    app.config["WTF_CSRF_ENABLED"] = True
    browser = app.test_client()
    bot = Bot(browser, slug)
    assert browser.post("/withdraw", data={"code": bot.token}).status_code == 400  # a forged cross-site post
    assert state_of(app, bot.token) == "started"
    form = browser.get(f"/withdraw?code={bot.token}").get_data(as_text=True)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', form).group(1)
    assert browser.post("/withdraw", data={"code": bot.token, "csrf_token": token}).status_code == 200
    assert state_of(app, bot.token) == "withdrawn"


def state_of(app, token: str) -> str:
    with session_scope(app) as session:
        return session.scalar(select(Participant.status).where(Participant.token == token))


def test_the_command_line_deletes_a_participant(app, client, load, database_url, tmp_path, monkeypatch):
    from click.testing import CliRunner

    from culturelab.platform.cli import main

    slug = load()
    bot = Bot(client, slug)
    bot.complete()
    target = pseudonym(app, bot.token)
    monkeypatch.setenv("CULTURELAB_DATABASE_URL", database_url)
    monkeypatch.setenv("CULTURELAB_DATA_DIR", str(tmp_path / "data"))
    result = CliRunner().invoke(main, ["study", "delete-participant", slug, target], catch_exceptions=False)
    assert result.output.strip() == f"deleted participant {target} of study '{slug}'"
    assert exported(app, slug, tmp_path) == (set(), 0)
    with session_scope(app) as session:
        (event,) = session.scalars(select(AuditEvent).where(AuditEvent.action == "participant.delete")).all()
        assert event.actor.startswith("cli") and event.detail == {"participant_id": target}
