"""Several gunicorn worker processes on one database: quotas and answers hold across processes.

The server runs as a participant's browser would meet it (`culturelab serve --workers 3`), set up with
the real CLI; nothing that matters may live in a worker's memory.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import create_engine, func, select

from culturelab.platform.models import Response

from studykit import write_study


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(base: str, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        base + path, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


@pytest.fixture
def server(database_url, tmp_path):
    env = {
        **os.environ,
        "CULTURELAB_DATABASE_URL": database_url,
        "CULTURELAB_DATA_DIR": str(tmp_path / "data"),
        "CULTURELAB_SECRET_KEY": "multi",
        "CULTURELAB_RATELIMIT_ENABLED": "0",
    }
    study = write_study(tmp_path, recruitment={"quotas": {"east_asian": 5}})
    for args in (["db", "upgrade"], ["study", "load", str(study)]):
        subprocess.run(
            [sys.executable, "-m", "culturelab.platform.cli", *args], env=env, check=True, capture_output=True
        )
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "culturelab.platform.cli", "serve", "--port", str(port), "--workers", "3"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(base + "/", timeout=2)
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"server did not start: {proc.stderr.read().decode()[-2000:]}")
            time.sleep(0.2)
    yield base
    proc.terminate()
    proc.wait(timeout=30)


def test_quota_and_answers_hold_across_worker_processes(server, database_url):
    tokens = []
    for _ in range(16):
        status, body = call(server, "POST", "/api/v1/studies/motif-test/participants", {"language": "en"})
        assert status == 201
        tokens.append(body["token"])
        assert (
            call(server, "POST", f"/api/v1/participants/{body['token']}/consent", {"consent": True})[0] == 200
        )

    with ThreadPoolExecutor(16) as pool:
        statuses = list(
            pool.map(
                lambda t: call(
                    server, "POST", f"/api/v1/participants/{t}/background", {"culture_group": "east_asian"}
                )[0],
                tokens,
            )
        )
    assert statuses.count(200) == 5 and statuses.count(409) == 11

    admitted = [t for t, s in zip(tokens, statuses) if s == 200]

    def walk(token: str) -> int:
        acknowledged = 0
        nxt = call(server, "GET", f"/api/v1/participants/{token}/next")[1]
        while not nxt["done"]:
            trial = nxt["trial"]
            value = trial["question"]["scale"]["min"] if trial["kind"] != "attention" else None
            if value is None:
                value = int("".join(c for c in trial["question"]["text"] if c.isdigit()))
            body = {"trial_id": trial["id"], "response_id": str(uuid.uuid4()), "value": value, "rt_ms": 500}
            status, reply = call(server, "POST", f"/api/v1/participants/{token}/responses", body)
            assert status == 201, reply
            # The same answer again, likely served by another worker: stored once.
            assert call(server, "POST", f"/api/v1/participants/{token}/responses", body)[0] == 200
            acknowledged += 1
            nxt = reply["next"]
        assert nxt["completion_code"]
        return acknowledged

    with ThreadPoolExecutor(5) as pool:
        acknowledged = sum(pool.map(walk, admitted))
    engine = create_engine(database_url)
    with engine.connect() as connection:
        assert connection.scalar(select(func.count()).select_from(Response)) == acknowledged == 5 * 14
    engine.dispose()
