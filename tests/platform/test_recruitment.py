"""Closing a study to new participants and reopening it (the dashboard and `culturelab study close|reopen`):
nobody new joins a closed study, whoever started finishes, and each change is in the audit log."""

from __future__ import annotations

import re

from clikit import one_line_error
from sqlalchemy import select
from test_researcher import account, signed_in

from culturelab.platform import ownership
from culturelab.platform.bots import Participant
from culturelab.platform.db import session_scope
from culturelab.platform.models import AuditEvent, Study
from culturelab.platform.recruitment import set_recruiting

from bot import Bot, FlaskTransport
from studykit import write_study


def _set_recruiting(app, slug: str, recruiting: bool) -> bool:
    with session_scope(app) as session:
        return set_recruiting(session, session.scalar(select(Study.id).where(Study.slug == slug)), recruiting, "test")


def test_a_closed_study_takes_nobody_new_but_lets_those_who_started_finish(app, client, load):
    slug = load()
    started = Bot(client, slug)
    prolific = {"STUDY_ID": "s1", "SESSION_ID": "session-1"}
    returning = Bot(client, slug, external_id="5f1e2d3c4b5a69788796a5b4", source="prolific", recruitment=prolific)
    assert _set_recruiting(app, slug, False)
    assert not _set_recruiting(app, slug, False)  # closing twice changes nothing the second time
    newcomer = Participant(FlaskTransport(client), slug, language="zh")
    r = newcomer.create()
    assert r.status_code == 409 and r.get_json()["error"]["code"] == "study_closed"
    r = client.post(f"/api/v1/studies/{slug}/participants", json={}, headers={"Accept-Language": "zh"})
    assert r.get_json()["error"]["message"] == "本研究目前不接收新的参与者"
    # The recruitment id that started comes back to its participation (the same Prolific session).
    again = Participant(FlaskTransport(client), slug, external_id=returning.external_id, source="prolific",
                        recruitment=prolific)
    assert again.create().status_code == 200 and again.token == returning.token
    assert started.complete()["done"] and returning.complete()["done"]
    # The study link says so at once to someone new (the page shows the message instead of the languages).
    assert '"closed": true' in client.get(f"/s/{slug}").get_data(as_text=True)
    assert _set_recruiting(app, slug, True)
    assert newcomer.create().status_code == 201
    assert '"closed": false' in client.get(f"/s/{slug}").get_data(as_text=True)
    with session_scope(app) as session:
        actions = session.scalars(select(AuditEvent.action).order_by(AuditEvent.id)).all()
    assert actions == ["study.close", "study.reopen"]


def test_an_owner_closes_and_reopens_from_the_dashboard_and_a_collaborator_cannot(app, load):
    slug = load()
    account(app, "ada@example.org", slug)
    account(app, "carl@example.org", slug, role=ownership.COLLABORATOR)
    ada, carl = signed_in(app, "ada@example.org"), signed_in(app, "carl@example.org")
    html = ada.get("/researcher/").get_data(as_text=True)
    assert 'data-recruiting="open"' in html and "Close to new participants" in html
    assert carl.post(f"/researcher/studies/{slug}/recruitment", data={"recruiting": "closed"}).status_code == 404
    assert ada.post(f"/researcher/studies/{slug}/recruitment", data={"recruiting": "shut"}).status_code == 400
    r = ada.post(f"/researcher/studies/{slug}/recruitment", data={"recruiting": "closed"}, follow_redirects=True)
    html = r.get_data(as_text=True)
    assert "The study takes no new participants; those who started may finish." in html
    assert 'data-recruiting="closed"' in html and "Reopen to new participants" in html
    assert Participant(FlaskTransport(app.test_client()), slug).create().status_code == 409
    html = carl.get("/researcher/").get_data(as_text=True)
    assert 'data-recruiting="closed"' in html and "Reopen to new participants" not in html  # sees, cannot change
    ada.post(f"/researcher/studies/{slug}/recruitment", data={"recruiting": "open"})
    assert Participant(FlaskTransport(app.test_client()), slug).create().status_code == 201
    with session_scope(app) as session:
        events = session.execute(select(AuditEvent.action, AuditEvent.actor).order_by(AuditEvent.id)).all()
    assert [tuple(e) for e in events] == [("study.close", "ada@example.org"), ("study.reopen", "ada@example.org")]


def test_the_dashboard_form_needs_its_csrf_token_and_a_signed_in_owner(app, load):
    slug = load()
    account(app, "ada@example.org", slug)
    account(app, "eve@example.org")
    url = f"/researcher/studies/{slug}/recruitment"
    assert app.test_client().post(url, data={"recruiting": "closed"}).status_code == 302  # to the login page
    assert signed_in(app, "eve@example.org").post(url, data={"recruiting": "closed"}).status_code == 404
    ada = signed_in(app, "ada@example.org")
    app.config["WTF_CSRF_ENABLED"] = True
    assert ada.post(url, data={"recruiting": "closed"}).status_code == 400
    dashboard = ada.get("/researcher/").get_data(as_text=True)
    form = dashboard[dashboard.index(f'action="{url}"'):]
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', form).group(1)
    assert ada.post(url, data={"recruiting": "closed", "csrf_token": token}).status_code == 302
    with session_scope(app) as session:
        assert session.scalar(select(Study.recruiting).where(Study.slug == slug)) is False


def test_an_mturk_preview_of_a_closed_study_does_not_ask_to_accept_the_hit(app, client, load):
    slug = load()
    _set_recruiting(app, slug, False)
    html = client.get(f"/s/{slug}?assignmentId=ASSIGNMENT_ID_NOT_AVAILABLE&hitId=H1").get_data(as_text=True)
    assert "not taking new participants" in html and "accept the HIT" not in html


def test_the_command_line_closes_and_reopens(run, tmp_path):
    study = write_study(tmp_path)
    assert run("db", "upgrade").exit_code == 0
    assert run("study", "load", study).exit_code == 0
    one_line_error(run("study", "close", "nope"), "there is no study 'nope'")

    def says(*args) -> str:
        result = run(*args)
        assert result.exit_code == 0, result.output
        return result.output.strip()

    assert says("study", "close", "motif-test") == "study 'motif-test' is now closed to new participants"
    assert says("study", "close", "motif-test") == "study 'motif-test' is already closed to new participants"
    # Loading the study again (a new version of its file, say) leaves it closed.
    says("study", "load", study)
    assert says("study", "reopen", "motif-test") == "study 'motif-test' is now open to new participants"
