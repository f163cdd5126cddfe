"""Researcher pages: sign-in with CSRF protection, recruitment per group, data package downloads."""

from __future__ import annotations

import io
import re
import zipfile

from sqlalchemy import create_engine, select, update
from sqlalchemy.orm import Session

from culturelab.platform import ownership
from culturelab.platform.db import session_scope
from culturelab.platform.models import Participant, Study
from culturelab.platform.researcher import create_researcher

from bot import Bot

PASSWORD = "a long enough password"


def account(app, email: str, *owned: str, role: str = ownership.OWNER) -> None:
    """Creates a researcher account, a member of the studies ``owned`` with ``role``."""
    with session_scope(app) as session:
        create_researcher(session, email, PASSWORD)
        session.flush()
        for slug in owned:
            ownership.add_member(session, slug, email, role)


def sign_in(app, client, *owned: str):
    """Creates Ada's account, makes her the owner of the studies ``owned`` and signs her in."""
    account(app, "Ada@Example.org", *owned)
    return client.post("/researcher/login", data={"email": "ada@example.org", "password": PASSWORD})


def signed_in(app, email: str):
    """A new browser signed in as the (existing) researcher."""
    client = app.test_client()
    assert client.post("/researcher/login", data={"email": email, "password": PASSWORD}).status_code == 302
    return client


def test_pages_need_a_login_and_wrong_passwords_fail(app, client, load):
    load()
    r = client.get("/researcher/")
    assert r.status_code == 302 and "/researcher/login" in r.headers["Location"]
    with session_scope(app) as session:
        create_researcher(session, "ada@example.org", PASSWORD)
    r = client.post("/researcher/login", data={"email": "ada@example.org", "password": "wrong password!"})
    assert r.status_code == 401 and b"wrong password" in r.data
    assert client.get("/researcher/studies/motif-test/export.zip").status_code == 302


def test_dashboard_shows_recruitment_by_group(app, client, load):
    slug = load(recruitment={"quotas": {"east_asian": 5}})
    participant = app.test_client()
    Bot(participant, slug).complete("east_asian")
    Bot(participant, slug).complete("west_african")
    Bot(participant, slug).consent(False)
    assert sign_in(app, client, slug).status_code == 302
    html = client.get("/researcher/").get_data(as_text=True)
    assert '<strong data-status="completed">2</strong>' in html
    assert '<strong data-status="screened_out">1</strong>' in html
    assert re.search(r'data-group="east_asian"><td>East Asian</td><td>1</td><td data-held>0</td><td data-free>0</td>'
                     r'<td>5</td><td>1</td>', html)
    assert re.search(r'data-group="west_african"><td>West African</td><td>1</td><td data-held>0</td>'
                     r'<td data-free>0</td><td>—</td><td>1</td>', html)
    assert "<strong data-responses>28</strong>" in html


def test_export_downloads_a_zipped_package(app, client, load):
    slug = load()
    Bot(app.test_client(), slug).complete()
    sign_in(app, client, slug)
    for fmt, suffix in [("csv", ".csv"), ("parquet", ".parquet")]:
        r = client.get(f"/researcher/studies/{slug}/export.zip?format={fmt}")
        assert r.status_code == 200 and r.mimetype == "application/zip"
        names = zipfile.ZipFile(io.BytesIO(r.data)).namelist()
        assert sorted(names) == sorted(
            f"{slug}/{n}"
            for n in ["datapackage.json", *(t + suffix for t in ("participants", "stimuli", "responses"))]
        )
    assert client.get(f"/researcher/studies/{slug}/export.zip?format=xlsx").status_code == 400
    assert client.get("/researcher/studies/nope/export.zip").status_code == 404


def test_login_form_is_csrf_protected(app, load):
    app.config["WTF_CSRF_ENABLED"] = True
    client = app.test_client()
    with session_scope(app) as session:
        create_researcher(session, "ada@example.org", PASSWORD)
    r = client.post("/researcher/login", data={"email": "ada@example.org", "password": PASSWORD})
    assert r.status_code == 400  # refused before the view runs: not signed in
    assert client.get("/researcher/").status_code == 302
    html = client.get("/researcher/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html).group(1)
    r = client.post(
        "/researcher/login", data={"email": "ada@example.org", "password": PASSWORD, "csrf_token": token}
    )
    assert r.status_code == 302
    # The participant API needs no CSRF token: it is identified by the token in its path.
    slug = load()
    assert client.post(f"/api/v1/studies/{slug}/participants", json={}).status_code == 201


def test_a_download_lets_participants_answer_meanwhile(app, client, load, monkeypatch):
    """The export reads in its own read-only transaction: on SQLite it holds no write lock, so an answer
    stored while the package is being written does not wait for it (nor fail after the busy timeout)."""
    from culturelab.platform import researcher

    slug = load()
    Bot(app.test_client(), slug).complete()
    sign_in(app, client, slug)
    answering = Bot(app.test_client(), slug)
    answering.consent(), answering.background()
    real_export = researcher.export_study
    stored = []

    def export_while_answering(session, *args):
        session.execute(select(Study.id))  # the export's transaction has begun
        engine = create_engine(app.config["DATABASE_URL"], connect_args={"timeout": 1} if "sqlite" in
                               app.config["DATABASE_URL"] else {})
        with Session(engine) as other, other.begin():
            other.execute(update(Participant).where(Participant.token == answering.token).values(age=44))
        engine.dispose()
        stored.append(True)
        return real_export(session, *args)

    monkeypatch.setattr(researcher, "export_study", export_while_answering)
    r = client.get(f"/researcher/studies/{slug}/export.zip")
    assert r.status_code == 200 and zipfile.ZipFile(io.BytesIO(r.data)).testzip() is None and stored == [True]
