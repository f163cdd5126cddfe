"""Owners and collaborators (docs/contracts.md, "Researchers and studies"): a researcher sees, exports and analyses
only the studies they own or share; any other study is a 404, by URL guessing too."""

from __future__ import annotations

import io
import re
import zipfile

import pytest
from clikit import one_line_error
from sqlalchemy import select
from test_researcher import PASSWORD, account, signed_in

from culturelab.platform import ownership
from culturelab.platform.db import session_scope
from culturelab.platform.models import AuditEvent, StudyMember

from bot import Bot
from studykit import write_study


def study_urls(app):
    """Every researcher URL that names a study (blueprints added later are covered too), with its methods."""
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/researcher") and "slug" in rule.arguments:
            for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
                yield rule, method


def test_a_stranger_gets_404_for_every_url_of_a_study_as_if_it_did_not_exist(app, load):
    slug = load()
    Bot(app.test_client(), slug).complete()
    account(app, "ada@example.org", slug)
    account(app, "eve@example.org")
    eve = signed_in(app, "eve@example.org")
    urls = list(study_urls(app))
    assert {rule.endpoint for rule, _ in urls} >= {
        "researcher.export", "researcher.share", "researcher.delete", "reports.report",
    }
    for rule, method in urls:
        for guess in (slug, "no-such-study"):
            url = rule.build({**dict.fromkeys(rule.arguments, 1), "slug": guess})[1]
            r = eve.open(url, method=method, data={"email": "eve@example.org", "participant_id": "p-x"})
            assert r.status_code == 404, (method, url, r.status_code)
            if guess == slug:
                existing = r.data
        # The answer for an existing study is the same bytes as for one that does not exist.
        assert existing == r.data
    assert slug not in eve.get("/researcher/").get_data(as_text=True)
    ada = signed_in(app, "ada@example.org")
    assert ada.get(f"/researcher/studies/{slug}/export.zip").status_code == 200
    assert f'id="study-{slug}"' in ada.get("/researcher/").get_data(as_text=True)
    # Nothing Eve tried reached the study: no member added, no participant deleted.
    with session_scope(app) as session:
        assert session.scalars(select(StudyMember.role)).all() == ["owner"]
    html = ada.get("/researcher/").get_data(as_text=True)
    assert '<strong data-status="completed">1</strong>' in html


def test_a_collaborator_sees_and_exports_but_only_owners_share_delete_and_read_the_log(app, load):
    slug = load()
    account(app, "ada@example.org", slug)
    account(app, "carl@example.org", slug, role=ownership.COLLABORATOR)
    carl = signed_in(app, "carl@example.org")
    html = carl.get("/researcher/").get_data(as_text=True)
    assert 'data-role="collaborator"' in html and "Audit log" not in html and 'class="share"' not in html
    r = carl.get(f"/researcher/studies/{slug}/export.zip?format=parquet")
    assert r.status_code == 200 and zipfile.ZipFile(io.BytesIO(r.data)).testzip() is None
    assert carl.post(f"/researcher/studies/{slug}/members", data={"email": "carl@example.org"}).status_code == 404
    r = carl.post(f"/researcher/studies/{slug}/participants/delete", data={"participant_id": "p-1"})
    assert r.status_code == 404
    html = signed_in(app, "ada@example.org").get("/researcher/").get_data(as_text=True)
    assert 'data-member="carl@example.org"' in html and 'data-action="study.export"' in html


def test_an_owner_shares_from_the_dashboard(app, load):
    slug = load()
    account(app, "ada@example.org", slug)
    account(app, "bob@example.org")
    ada, bob = signed_in(app, "ada@example.org"), signed_in(app, "bob@example.org")
    assert slug not in bob.get("/researcher/").get_data(as_text=True)
    r = ada.post(f"/researcher/studies/{slug}/members", data={"email": "Bob@Example.org"}, follow_redirects=True)
    assert "bob@example.org can now see this study." in r.get_data(as_text=True).lower()
    assert re.search(rf'id="study-{slug}" data-role="collaborator"', bob.get("/researcher/").get_data(as_text=True))
    assert bob.get(f"/researcher/studies/{slug}/export.zip").status_code == 200
    r = ada.post(f"/researcher/studies/{slug}/members", data={"email": "nobody@example.org"})
    assert r.status_code == 302 and r.headers["Location"].endswith(f"/researcher/#study-{slug}")
    assert "No researcher account has the email nobody@example.org." in ada.get("/researcher/").get_data(as_text=True)
    assert ada.post(f"/researcher/studies/{slug}/members", data={"email": ""}).status_code == 400
    with session_scope(app) as session:
        assert sorted(session.scalars(select(StudyMember.role)).all()) == ["collaborator", "owner"]
        (event,) = session.scalars(select(AuditEvent).where(AuditEvent.action == "study.share")).all()
        assert (event.actor, event.detail) == ("ada@example.org", {"email": "bob@example.org", "role": "collaborator"})


def test_the_owner_keeps_ownership_when_shared_again_as_a_collaborator(app, load):
    slug = load()
    account(app, "ada@example.org", slug)
    with session_scope(app) as session:
        assert ownership.add_member(session, slug, "ada@example.org", ownership.COLLABORATOR).role == "owner"
        with pytest.raises(ownership.MembershipError, match="no researcher"):
            ownership.add_member(session, slug, "zed@example.org", ownership.OWNER)
        with pytest.raises(ownership.MembershipError, match="no study"):
            ownership.add_member(session, "nope", "ada@example.org", ownership.OWNER)


def test_the_command_line_loads_with_an_owner_and_shares(run, tmp_path):
    study = write_study(tmp_path)
    assert run("db", "upgrade").exit_code == 0
    assert run("researcher", "create", "ada@example.org", "--password", PASSWORD).exit_code == 0
    one_line_error(run("study", "load", study, "--owner", "zed@example.org"), "no researcher 'zed@example.org'")
    result = run("study", "load", study, "--owner", "ada@example.org")
    assert result.exit_code == 0 and "owned by ada@example.org" in result.output
    assert run("researcher", "create", "bob@example.org", input=f"{PASSWORD}\n{PASSWORD}\n").exit_code == 0
    one_line_error(run("study", "share", "nope", "bob@example.org"), "there is no study 'nope'")
    one_line_error(run("study", "share", "motif-test", "zed@example.org"), "there is no researcher")
    result = run("study", "share", "motif-test", "bob@example.org")
    assert result.exit_code == 0
    assert result.output.strip() == "bob@example.org is now collaborator of study 'motif-test'"
    result = run("study", "share", "motif-test", "bob@example.org", "--role", "owner")
    assert result.output.strip() == "bob@example.org is now owner of study 'motif-test'"
    assert run("study", "share", "motif-test", "bob@example.org", "--role", "admin").exit_code == 2
    one_line_error(run("study", "delete-participant", "motif-test", "p-nobody"), "no participant 'p-nobody'")
    assert run("export", "--study", "motif-test", "--out", tmp_path / "out").exit_code == 0
