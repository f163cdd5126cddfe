"""The audit log: who loaded, shared, exported or deleted what, and when; owners read it on the dashboard."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select
from test_researcher import PASSWORD, signed_in

from culturelab.platform import audit
from culturelab.platform.db import session_scope
from culturelab.platform.models import AuditEvent

from studykit import write_study


def test_command_line_and_web_actions_are_logged_for_the_owner(run, tmp_path, monkeypatch):  # noqa: F811
    monkeypatch.setattr(audit.getpass, "getuser", lambda: "lab-admin")
    study = write_study(tmp_path)
    run("db", "upgrade")
    run("researcher", "create", "ada@example.org", "--password", PASSWORD)
    run("researcher", "create", "bob@example.org", "--password", PASSWORD)
    assert run("study", "load", study, "--owner", "ada@example.org").exit_code == 0
    assert run("study", "share", "motif-test", "bob@example.org").exit_code == 0
    assert run("export", "--study", "motif-test", "--out", tmp_path / "out").exit_code == 0

    from culturelab.platform.app import create_app

    app = create_app({"TESTING": True, "WTF_CSRF_ENABLED": False})
    bob = signed_in(app, "bob@example.org")
    assert bob.get("/researcher/studies/motif-test/export.zip?format=parquet").status_code == 200
    with session_scope(app) as session:
        events = [(e.actor, e.action, e.detail) for e in session.scalars(select(AuditEvent).order_by(AuditEvent.id))]
    assert [(actor, action) for actor, action, _ in events] == [
        ("cli:lab-admin", "study.load"),
        ("cli:lab-admin", "study.share"),
        ("cli:lab-admin", "study.export"),
        ("bob@example.org", "study.export"),
    ]
    assert events[0][2]["owner"] == "ada@example.org" and events[0][2]["outcome"] == "created"
    assert events[1][2] == {"email": "bob@example.org", "role": "collaborator"}
    assert events[3][2] == {"format": "parquet", "via": "web"}
    # The owner reads the log, newest first; a collaborator does not see it.
    html = signed_in(app, "ada@example.org").get("/researcher/").get_data(as_text=True)
    assert re.findall(r'data-action="([^"]+)"', html) == ["study.export", "study.export", "study.share", "study.load"]
    assert "bob@example.org" in html and "cli:lab-admin" in html
    assert "data-action" not in bob.get("/researcher/").get_data(as_text=True)
    app.extensions["culturelab.engine"].dispose()


def test_a_failed_load_logs_nothing(run, tmp_path):  # noqa: F811
    study = write_study(tmp_path)
    run("db", "upgrade")
    assert run("study", "load", study, "--owner", "nobody@example.org").exit_code == 2
    from culturelab.platform.app import create_app

    app = create_app({"TESTING": True, "WTF_CSRF_ENABLED": False})
    with session_scope(app) as session:
        assert session.scalars(select(AuditEvent)).all() == []
    app.extensions["culturelab.engine"].dispose()


def test_unknown_actions_are_refused():
    with pytest.raises(ValueError, match="unknown audit action"):
        audit.record(None, "study.peek", "eve", None)
