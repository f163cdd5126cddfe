"""Faults under load: every server process killed with SIGKILL mid-study (and, on PostgreSQL, every database
connection dropped as in a server restart); the participants' pages resend what got no reply, and every
acknowledged answer is stored exactly once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from culturelab.platform.bots import HttpTransport, Reply, StudyKnowledge, run_bots

from servers import free_port, wait_for
from studykit import write_study


class PatientTransport(HttpTransport):
    """The page's behaviour: a request that gets no reply, or a 5xx, is sent again (the same body, so the same
    response_id) with backoff, for up to a minute. Counts what it had to send again."""

    resent = 0

    def request(self, method: str, path: str, body: dict | None = None) -> Reply:
        delay = 0.2
        for _ in range(40):
            try:
                reply = super().request(method, path, body)
                if reply.status_code < 500:
                    return reply
            except OSError:
                self.connection.close()
                self.connection = self._connect()
            PatientTransport.resent += 1
            time.sleep(delay)
            delay = min(2.0, delay * 1.5)
        raise ConnectionError(f"{method} {path}: no reply for a minute")


def _serve(env: dict, port: int, log: Path) -> subprocess.Popen:
    with log.open("a") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "culturelab.platform.cli", "serve", "--port", str(port), "--workers", "2"],
            env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )


def _kill_all(server: subprocess.Popen) -> None:
    """SIGKILL to the gunicorn arbiter and its workers at once (they share its process group)."""
    os.killpg(server.pid, signal.SIGKILL)
    server.wait()


@pytest.mark.slow
def test_every_acknowledged_answer_survives_kill_9_and_a_database_restart(database_url, tmp_path):
    app_name = f"faults_{uuid.uuid4().hex[:8]}"
    if database_url.startswith("postgresql"):
        database_url += f"&application_name={app_name}"
    env = {**os.environ, "CULTURELAB_DATABASE_URL": database_url, "CULTURELAB_DATA_DIR": str(tmp_path / "data"),
           "CULTURELAB_SECRET_KEY": "faults", "CULTURELAB_RATELIMIT_ENABLED": "0"}
    study = write_study(tmp_path, design={"trials_per_participant": 30, "order": "latin_square",
                                          "balance": ["stimulus_culture"], "attention_checks": 2})
    for args in (["db", "upgrade"], ["study", "load", str(study)]):
        subprocess.run([sys.executable, "-m", "culturelab.platform.cli", *args], env=env, check=True,
                       capture_output=True)
    port, log = free_port(), tmp_path / "server.log"
    base = f"http://127.0.0.1:{port}"
    server = _serve(env, port, log)
    wait_for(base + "/", server, log)

    knowledge = StudyKnowledge.from_study_file(study)
    result: dict = {}
    # Each bot answers a trial every ~50 ms, so the faults below land in the middle of the study.
    walk = threading.Thread(target=lambda: result.update(tally=run_bots(
        lambda: PatientTransport(base, timeout=10), knowledge, 12, concurrency=6, think_s=0.05)[0]))
    try:
        walk.start()
        time.sleep(2)
        _kill_all(server)
        time.sleep(1)
        server = _serve(env, port, log)
        wait_for(base + "/", server, log)
        if database_url.startswith("postgresql"):
            time.sleep(2)
            admin = create_engine(database_url.split("?")[0])
            with admin.begin() as connection:
                dropped = connection.execute(text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = :n"
                ), {"n": app_name}).scalar()
            admin.dispose()
            assert dropped > 0
        walk.join(timeout=240)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(30)
    tally = result["tally"]
    assert tally.completed == 12 and tally.failed == 0, tally.errors
    assert PatientTransport.resent > 0  # the faults did land while participants were answering

    engine = create_engine(database_url)
    with engine.connect() as connection:
        stored = [r for (r,) in connection.execute(text("SELECT response_id FROM responses"))]
        answered = connection.scalar(text("SELECT sum(n_answered) FROM participants"))
    engine.dispose()
    assert len(stored) == len(set(stored)) == 12 * 32 == answered
    assert set(stored) == set(tally.acknowledged)
