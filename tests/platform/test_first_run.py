"""What a newcomer runs first, run the way they run it: the `culturelab` command with default settings (no
CULTURELAB_* variables, no absolute paths) from a folder of their own, not the repository's."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from http.cookiejar import CookieJar
from pathlib import Path
from urllib.parse import urlencode

import pytest

from culturelab.platform.bots import HttpTransport, Participant

from servers import free_port

EXAMPLE = Path(__file__).parents[2] / "platform" / "examples" / "motif-preferences" / "study.yaml"


def plain_env() -> dict[str, str]:
    """The environment of someone who has set nothing of CultureLab's."""
    return {k: v for k, v in os.environ.items() if not k.startswith("CULTURELAB_")}


def culturelab(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "culturelab.platform.cli", *args], cwd=cwd, env=plain_env(),
                          capture_output=True, text=True, timeout=300)


def test_help_lists_culturelabs_commands_and_writes_nothing(tmp_path):
    result = culturelab(tmp_path, "--help")
    assert result.returncode == 0, result.stderr
    commands = re.findall(r"^  (\S+)", result.stdout.split("Commands:")[1], re.M)
    assert {"demo", "bots", "serve", "study", "stimuli", "export", "analyze", "generate"} <= set(commands)
    assert not {"run", "shell", "routes", "limiter"} & set(commands)
    assert "--app" not in result.stdout
    assert list(tmp_path.iterdir()) == []


def test_validation_writes_nothing(tmp_path):
    assert culturelab(tmp_path, "study", "validate", str(EXAMPLE)).returncode == 0
    assert list(tmp_path.iterdir()) == []


def test_a_command_started_elsewhere_names_the_database_it_looked_for(tmp_path):
    result = culturelab(tmp_path, "study", "load", str(EXAMPLE))
    assert result.returncode == 2
    assert f"no database at {tmp_path / 'instance' / 'culturelab.sqlite3'}" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []  # no empty database left behind


def test_relative_settings_are_made_absolute_once(tmp_path, monkeypatch):
    from culturelab.platform.app import create_app

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CULTURELAB_INSTANCE_PATH", "lab")
    monkeypatch.setenv("CULTURELAB_DATA_DIR", "images")
    monkeypatch.setenv("CULTURELAB_DATABASE_URL", "sqlite:///db/study.sqlite3")
    app = create_app(write_instance=False)
    assert app.instance_path == str(tmp_path / "lab")
    assert app.config["MEDIA_DIR"] == str(tmp_path / "images" / "media")
    assert app.config["DATABASE_URL"] == f"sqlite:///{tmp_path / 'db' / 'study.sqlite3'}"
    assert not (tmp_path / "lab").exists()


def _wait_for_line(log: Path, process: subprocess.Popen, pattern: str, seconds: float) -> str:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        text = log.read_text()
        if re.search(pattern, text):
            return text
        if process.poll() is not None:
            pytest.fail(f"culturelab demo exited with {process.returncode}:\n{text[-3000:]}")
        time.sleep(0.5)
    process.kill()
    pytest.fail(f"no {pattern!r} within {seconds} s:\n{log.read_text()[-3000:]}")


def _sign_in(base: str, email: str, password: str) -> urllib.request.OpenerDirector:
    browser = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(CookieJar()))
    form = browser.open(f"{base}/researcher/login").read().decode()
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', form).group(1)
    data = urlencode({"csrf_token": token, "email": email, "password": password}).encode()
    browser.open(f"{base}/researcher/login", data=data).close()
    return browser


@pytest.mark.slow
def test_demo_with_default_settings_from_another_folder(tmp_path):
    """`culturelab demo` as a newcomer starts it: every image of a participant's trials loads, the simulated
    participants complete, and the researcher login printed opens the report."""
    port = free_port()
    log = tmp_path / "demo.out"
    with log.open("w") as out:
        demo = subprocess.Popen(
            [sys.executable, "-m", "culturelab.platform.cli", "demo", "--port", str(port), "--participants", "12"],
            cwd=tmp_path, env=plain_env(), stdout=out, stderr=subprocess.STDOUT,
        )
    try:
        text = _wait_for_line(log, demo, r"stop: +Ctrl-C", 400)
        instance = tmp_path / "instance"
        assert f"instance folder {instance}" in text
        assert (instance / "culturelab.sqlite3").exists() and (instance / "secret_key").exists()
        assert re.search(r"bots: 12 completed, 0 failed", text)
        base = f"http://127.0.0.1:{port}"

        # The first participant of a newcomer: every image of every trial loads, as a PNG.
        participant = Participant(HttpTransport(base), "motif-preferences", language="zh")
        assert participant.create().status_code == 201
        assert participant.consent().status_code == 200
        assert participant.background("east_asian").status_code == 200
        urls, nxt = [], participant.next()
        while not nxt["done"]:
            urls += [s["url"] for s in nxt["trial"]["stimuli"]]
            nxt = participant.answer(nxt["trial"]).get_json()["next"]
        assert len(urls) >= 20
        for url in set(urls):
            with urllib.request.urlopen(base + url) as image:
                assert image.status == 200 and image.headers["Content-Type"] == "image/png"
                assert image.read(8) == b"\x89PNG\r\n\x1a\n"

        email, password = re.search(r"email (\S+) +password (\S+)", text).groups()
        report = _sign_in(base, email, password).open(f"{base}/researcher/studies/motif-preferences/report")
        assert report.status == 200 and report.headers["Content-Type"].startswith("text/html")
        body = report.read().decode()
        assert "Pattern preferences" in body and "plotly" in body
    finally:
        demo.send_signal(signal.SIGINT)
        try:
            demo.wait(60)
        except subprocess.TimeoutExpired:
            demo.kill()
            pytest.fail("culturelab demo did not stop on Ctrl-C")
