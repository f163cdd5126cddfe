"""The web edge: cookie flags, sessions that end on sign-out, security headers, and sign-in guessing limits
that every server process shares (they live in the database)."""

from __future__ import annotations

import re
import threading
import types
from http.cookies import SimpleCookie

import pytest
from test_researcher import PASSWORD, account
from werkzeug import security as werkzeug_security

from culturelab.platform import security
from culturelab.platform.app import create_app
from culturelab.platform.config import TestConfig

from bot import Bot

ADA = {"email": "ada@example.org", "password": PASSWORD}
WRONG = {"email": "ada@example.org", "password": "not the password"}


def from_address(app, address: str):
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    return client


def set_cookie(response, name: str) -> SimpleCookie:
    header = next(h for h in response.headers.getlist("Set-Cookie") if h.startswith(f"{name}="))
    cookie = SimpleCookie()
    cookie.load(header)
    return cookie[name]


@pytest.fixture
def clock(monkeypatch):
    """The throttle's and the sessions' clock, moved by hand."""
    now = [1_900_000_000.0]
    monkeypatch.setattr(security, "time", types.SimpleNamespace(time=lambda: now[0]))
    return now


def test_the_session_cookie_is_lax_and_http_only_and_secure_behind_https(app, database_url, tmp_path):
    account(app, "ada@example.org")
    r = app.test_client().post("/researcher/login", data=ADA)
    cookie = set_cookie(r, "session")
    assert cookie["samesite"] == "Lax" and cookie["httponly"] and not cookie["secure"]
    assert "Strict-Transport-Security" not in r.headers
    config = {k: getattr(TestConfig, k) for k in dir(TestConfig) if k.isupper()}
    https = create_app({**config, "DATABASE_URL": database_url, "DATA_DIR": str(tmp_path / "d"),
                        "PREFERRED_URL_SCHEME": "https"})
    r = https.test_client().post("/researcher/login", data=ADA, base_url="https://lab.example.org")
    assert set_cookie(r, "session")["secure"] and set_cookie(r, security.DEVICE_COOKIE)["secure"]
    assert r.headers["Strict-Transport-Security"] == "max-age=31536000"
    https.extensions["culturelab.engine"].dispose()


def test_a_copied_session_cookie_stops_working_at_sign_out(app):
    account(app, "ada@example.org")
    browser = app.test_client()
    assert browser.post("/researcher/login", data=ADA).status_code == 302
    stolen = browser.get_cookie("session").value
    thief = app.test_client()
    thief.set_cookie("session", stolen)
    assert thief.get("/researcher/").status_code == 200
    assert browser.post("/researcher/logout").status_code == 302
    assert thief.get("/researcher/").status_code == 302  # to the sign-in page
    # Other browsers of the same researcher stay signed in: each sign-in is its own session.
    other = app.test_client()
    other.post("/researcher/login", data=ADA)
    browser.post("/researcher/login", data=ADA)
    browser.post("/researcher/logout")
    assert other.get("/researcher/").status_code == 200


def test_sessions_expire(app, clock):
    app.config["RESEARCHER_SESSION_HOURS"] = 1
    account(app, "ada@example.org")
    browser = app.test_client()
    browser.post("/researcher/login", data=ADA)
    clock[0] += 3599
    assert browser.get("/researcher/").status_code == 200
    clock[0] += 2
    assert browser.get("/researcher/").status_code == 302


def test_security_headers(app, client, load):
    slug = load()
    bot = Bot(client, slug)
    page = client.get(f"/p/{bot.token}")
    csp = page.headers["Content-Security-Policy"]
    nonce = re.search(r"script-src 'self' 'nonce-([^']+)'", csp).group(1)
    html = page.get_data(as_text=True)
    # Every inline script carries the nonce (JSON data blocks are not run, so they need none).
    inline = re.findall(r"<script(?![^>]*\bsrc=)(?![^>]*application/json)([^>]*)>", html)
    assert inline and all(f'nonce="{nonce}"' in attributes for attributes in inline)
    assert "frame-ancestors 'self' https://worker.mturk.com" in csp and "X-Frame-Options" not in page.headers
    assert "object-src 'none'" in csp and "base-uri 'none'" in csp
    for r in (page, client.get("/researcher/login"), client.get("/api/v1/participants/nope/next")):
        assert r.headers["X-Content-Type-Options"] == "nosniff"
        assert r.headers["Referrer-Policy"] == "no-referrer"
    login = client.get("/researcher/login")
    assert login.headers["X-Frame-Options"] == "DENY" and "frame-ancestors 'none'" in login.headers[
        "Content-Security-Policy"]
    assert login.headers["Cache-Control"] == "no-store"
    assert client.get(f"/p/{bot.token}").headers["Content-Security-Policy"] != csp  # a new nonce each time


def test_gunicorn_writes_no_server_header():
    from gunicorn.http import wsgi

    request = types.SimpleNamespace(version=(1, 1), should_close=lambda: False)
    response = wsgi.Response(request, None, types.SimpleNamespace())
    response.status = "200 OK"
    response.should_close = lambda: False
    headers = response.default_headers()
    assert any(h.startswith("Date:") for h in headers)
    assert not any(h.lower().startswith("server:") for h in headers), headers


@pytest.fixture
def throttled(app):
    app.config.update(RATELIMIT_ENABLED=True, LOGIN_LIMIT="5/minute", LOGIN_FREE_ATTEMPTS=3, LOGIN_MAX_BACKOFF=60)
    return app


@pytest.fixture
def second_process(throttled, database_url, tmp_path):
    """Another app on the same database, as a second server process would be: nothing shared but the
    database (its own engine and connections)."""
    config = {k: getattr(TestConfig, k) for k in dir(TestConfig) if k.isupper()}
    other = create_app({**config, **{k: throttled.config[k] for k in (
        "RATELIMIT_ENABLED", "LOGIN_LIMIT", "LOGIN_FREE_ATTEMPTS", "LOGIN_MAX_BACKOFF")},
        "DATABASE_URL": database_url, "DATA_DIR": str(tmp_path / "other")})
    yield other
    other.extensions["culturelab.engine"].dispose()


def test_the_address_limit_holds_across_processes(throttled, second_process, clock):
    account(throttled, "ada@example.org")
    statuses = []
    for i in range(7):
        app = (throttled, second_process)[i % 2]
        # Different accounts, so that only the per-address limit applies; a new connection each time.
        r = from_address(app, "203.0.113.9").post("/researcher/login", data={**WRONG, "email": f"x{i}@example.org"})
        statuses.append(r.status_code)
    assert statuses == [401] * 5 + [429] * 2
    assert int(r.headers["Retry-After"]) == 60
    assert from_address(throttled, "203.0.113.10").post("/researcher/login", data=ADA).status_code == 302
    clock[0] += 60
    assert from_address(second_process, "203.0.113.9").post("/researcher/login", data=ADA).status_code == 302


def test_racing_attempts_get_exactly_the_limit(throttled, second_process):
    account(throttled, "ada@example.org")
    statuses, barrier = [], threading.Barrier(10)

    def guess(i):
        client = from_address((throttled, second_process)[i % 2], "198.51.100.7")
        barrier.wait()
        statuses.append(client.post("/researcher/login", data={**WRONG, "email": f"r{i}@example.org"}).status_code)

    threads = [threading.Thread(target=guess, args=(i,)) for i in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(statuses) == [401] * 5 + [429] * 5


def test_an_account_backs_off_exponentially_but_its_owner_gets_in(throttled, second_process, clock):
    account(throttled, "ada@example.org")
    owner = from_address(throttled, "192.0.2.1")
    assert owner.post("/researcher/login", data=ADA).status_code == 302  # marks this browser as trusted
    owner.post("/researcher/logout")

    def guess(n: int):  # a guesser spread over many addresses and both processes
        app = (throttled, second_process)[n % 2]
        return from_address(app, f"10.0.0.{n}").post("/researcher/login", data=WRONG)

    assert [guess(n).status_code for n in range(3)] == [401, 401, 401]
    r = guess(3)
    assert r.status_code == 429 and r.headers["Retry-After"] == "1"
    waits = []
    for n in range(4, 12):
        clock[0] += 3600
        assert guess(n).status_code == 401
        waits.append(int(guess(n).headers["Retry-After"]))
    assert waits == [2, 4, 8, 16, 32, 60, 60, 60]  # doubling, capped at LOGIN_MAX_BACKOFF
    # The right password from a stranger's browser waits too; the owner's own browser does not.
    assert from_address(throttled, "10.1.1.1").post("/researcher/login", data=ADA).status_code == 429
    assert owner.post("/researcher/login", data=ADA).status_code == 302


def test_unknown_emails_are_throttled_and_hashed_like_known_ones(throttled, monkeypatch):
    account(throttled, "ada@example.org")
    hashed = []
    check = werkzeug_security.check_password_hash
    monkeypatch.setattr(security, "check_password_hash", lambda h, p: hashed.append(h) or check(h, p))
    for email in ("ada@example.org", "nobody@example.org"):
        statuses = [
            from_address(throttled, f"10.2.0.{n}").post("/researcher/login", data={**WRONG, "email": email}).status_code
            for n in range(4)
        ]
        assert statuses == [401, 401, 401, 429]
    # Every answered attempt ran one password hash of the same kind, known email or not.
    assert len(hashed) == 6 and len({h.split("$")[0] for h in hashed}) == 1


def test_culturelab_serve_sends_the_headers_and_no_server_name(live_server):
    import http.client
    from urllib.parse import urlsplit

    base = urlsplit(live_server(workers=1))
    connection = http.client.HTTPConnection(base.hostname, base.port, timeout=30)
    for path in ("/", "/researcher/login", "/api/v1/participants/nope/next"):
        connection.request("GET", path)
        response = connection.getresponse()
        response.read()
        assert "gunicorn" not in (response.getheader("Server") or ""), (path, response.getheaders())
        assert response.getheader("X-Content-Type-Options") == "nosniff"
        assert "frame-ancestors" in response.getheader("Content-Security-Policy")
    connection.close()


def test_behind_a_trusted_https_proxy_the_forwarded_scheme_and_address_count(database_url, tmp_path):
    config = {k: getattr(TestConfig, k) for k in dir(TestConfig) if k.isupper()}
    app = create_app({**config, "DATABASE_URL": database_url, "DATA_DIR": str(tmp_path / "d"), "TRUSTED_PROXIES": 1,
                      "RATELIMIT_ENABLED": True, "LOGIN_LIMIT": "1/minute"})
    from culturelab.platform.migrate import upgrade

    upgrade(app.extensions["culturelab.engine"])
    proxy = app.test_client()
    via_https = proxy.get("/researcher/login", headers={"X-Forwarded-Proto": "https"})
    assert via_https.headers["Strict-Transport-Security"] == "max-age=31536000"
    assert "Strict-Transport-Security" not in proxy.get("/researcher/login").headers
    # Each client's own address (as the proxy forwarded it) has its own sign-in limit.
    for address in ("198.51.100.1", "198.51.100.2"):
        r = proxy.post("/researcher/login", data=WRONG, headers={"X-Forwarded-For": address})
        assert r.status_code == 401
    assert proxy.post("/researcher/login", data=WRONG, headers={"X-Forwarded-For": "198.51.100.1"}).status_code == 429
    app.extensions["culturelab.engine"].dispose()


def test_counts_untouched_for_a_day_are_cleared_at_the_next_sign_in(throttled, clock):
    from sqlalchemy import func, select

    from culturelab.platform.db import session_scope
    from culturelab.platform.models import SignInThrottle

    account(throttled, "ada@example.org")
    for n in range(3):
        from_address(throttled, f"10.3.0.{n}").post("/researcher/login", data={**WRONG, "email": f"s{n}@example.org"})

    def rows():
        with session_scope(throttled) as session:
            return session.scalar(select(func.count()).select_from(SignInThrottle))

    assert rows() == 6  # three addresses, three accounts
    clock[0] += 86400 + 1
    assert from_address(throttled, "10.3.1.1").post("/researcher/login", data=ADA).status_code == 302
    assert rows() == 1  # only the address that just signed in


def test_culturelab_serve_counts_sign_in_guesses_across_its_worker_processes(database_url, tmp_path):
    """Three worker processes, a new connection per guess (so guesses land on different workers): the limit
    of 5 per address holds for all of them together."""
    import http.client
    import os
    import subprocess
    import sys
    from urllib.parse import urlencode

    from servers import free_port, wait_for

    env = {**os.environ, "CULTURELAB_DATABASE_URL": database_url, "CULTURELAB_DATA_DIR": str(tmp_path / "data"),
           "CULTURELAB_SECRET_KEY": "live", "CULTURELAB_LOGIN_LIMIT": "5/minute",
           "CULTURELAB_LOGIN_FREE_ATTEMPTS": "100", "CULTURELAB_WTF_CSRF_ENABLED": "false"}
    subprocess.run([sys.executable, "-m", "culturelab.platform.cli", "db", "upgrade"], env=env, check=True,
                   capture_output=True)
    port, log = free_port(), tmp_path / "server.log"
    with log.open("w") as out:
        server = subprocess.Popen([sys.executable, "-m", "culturelab.platform.cli", "serve", "--port", str(port),
                                   "--workers", "3"], env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_for(f"http://127.0.0.1:{port}/", server, log)
        statuses = []
        for n in range(12):
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            connection.request("POST", "/researcher/login", urlencode({**WRONG, "email": f"g{n}@example.org"}),
                               {"Content-Type": "application/x-www-form-urlencoded"})
            statuses.append(connection.getresponse().status)
            connection.close()
        assert statuses == [401] * 5 + [429] * 7
    finally:
        server.terminate()
        server.wait(timeout=30)


def create(app, slug: str, address: str):
    return from_address(app, address).post(f"/api/v1/studies/{slug}/participants", json={})


def test_new_participants_per_address_are_limited_for_all_processes_together(throttled, second_process, load, clock):
    slug = load()
    for app in (throttled, second_process):
        app.config["PARTICIPANT_CREATE_LIMIT"] = "3/minute"
    statuses = [create((throttled, second_process)[i % 2], slug, "203.0.113.7").status_code for i in range(5)]
    assert statuses == [201] * 3 + [429] * 2
    r = create(throttled, slug, "203.0.113.7")
    assert r.get_json()["error"]["code"] == "rate_limited" and r.headers["Retry-After"] == "60"
    assert create(second_process, slug, "203.0.113.8").status_code == 201  # another address has its own count
    clock[0] += 60
    assert create(second_process, slug, "203.0.113.7").status_code == 201  # a new window


def test_culturelab_serve_limits_new_participants_per_address_across_its_worker_processes(live_server):
    """As for sign-in (above): three workers, a new connection per request, one limit for all of them."""
    import http.client
    from urllib.parse import urlsplit

    base = urlsplit(live_server(workers=3, env={"CULTURELAB_RATELIMIT_ENABLED": "1",
                                               "CULTURELAB_PARTICIPANT_CREATE_LIMIT": "5/minute"}))
    statuses = []
    for _ in range(12):
        connection = http.client.HTTPConnection(base.hostname, base.port, timeout=30)
        connection.request("POST", "/api/v1/studies/motif-test/participants", "{}",
                           {"Content-Type": "application/json"})
        statuses.append(connection.getresponse().status)
        connection.close()
    assert statuses == [201] * 5 + [429] * 7
