"""`culturelab bots`: simulated participants over HTTP against a running server, and what they answer."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from culturelab.platform.bots import StudyKnowledge, run_bots

from bot import FlaskTransport


def bots_command(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "culturelab.platform.cli", "bots", *args],
                          env={**os.environ, **(env or {})}, capture_output=True, text=True, timeout=300)


def test_bots_complete_a_study_on_a_running_server(live_server, tmp_path, database_url):
    base = live_server()
    result = bots_command("--study", "motif-test", "--n", "6", "--url", base, "--profile", "mix", "--think-ms", "5",
                          "--study-file", str(tmp_path / "study.yaml"))
    assert result.returncode == 0, result.stderr
    # 6 x (12 trials + 2 attention checks); a choice trial shows two images (4 of them each)
    assert "bots: 6 completed, 0 failed; 84 responses and 108 images" in result.stdout
    assert "responses/s" in result.stdout

    # Without a study file the bots learn the study from this instance's database and images.
    elsewhere = bots_command("--study", "motif-test", "--n", "2", "--url", base,
                             env={"CULTURELAB_DATABASE_URL": database_url, "CULTURELAB_DATA_DIR": str(tmp_path)})
    assert elsewhere.returncode == 2 and "are not in" in elsewhere.stderr and "--study-file" in elsewhere.stderr
    local = bots_command("--study", "motif-test", "--n", "2", "--url", base,
                         env={"CULTURELAB_DATABASE_URL": database_url, "CULTURELAB_DATA_DIR": str(tmp_path / "data")})
    assert local.returncode == 0, local.stderr
    assert "bots: 2 completed, 0 failed" in local.stdout

    engine = create_engine(database_url)
    with engine.connect() as connection:
        assert connection.scalar(text("SELECT count(*) FROM participants WHERE status = 'completed'")) == 8
        assert connection.scalar(text("SELECT count(*) FROM responses")) == 8 * 14
    engine.dispose()


def test_bots_report_the_servers_errors_by_kind(live_server, tmp_path):
    base = live_server(recruitment={"quotas": {"east_asian": 1, "west_african": 1}})
    result = bots_command("--study", "motif-test", "--n", "4", "--url", base, "--concurrency", "1",
                          "--study-file", str(tmp_path / "study.yaml"))
    assert result.returncode == 1
    assert "bots: 2 completed, 2 failed" in result.stdout
    assert "server errors: background 409 quota_full x2" in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--url", "ftp://x"], "Error: not an http(s) URL: 'ftp://x'"),
        (["--study", "nope"], "Error: no study 'nope' in the database"),
    ],
)
def test_bots_bad_input_is_one_line(args, message, tmp_path, live_server, database_url):
    live_server()
    options = {"--study": "motif-test", **dict(zip(args[::2], args[1::2]))}
    result = bots_command(*[x for kv in options.items() for x in kv],
                          env={"CULTURELAB_DATABASE_URL": database_url, "CULTURELAB_DATA_DIR": str(tmp_path / "data")})
    assert result.returncode == 2
    assert result.stderr.startswith(message) and len(result.stderr.strip().splitlines()) == 1


def _knowledge(app, slug):
    from culturelab.platform.db import session_scope

    with session_scope(app) as session:
        return StudyKnowledge.from_database(session, slug, Path(app.config["MEDIA_DIR"]))


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_planted_in_group_preference_shows_in_the_answers(app, load):
    slug = load()
    knowledge = _knowledge(app, slug)
    tally, _ = run_bots(lambda: FlaskTransport(app.test_client()), knowledge, 24, in_group_d=1.5, concurrency=1)
    assert tally.completed == 24
    engine = app.extensions["culturelab.engine"]
    with engine.connect() as connection:
        rows = connection.execute(text(
            "SELECT p.culture_group, s.culture, r.value FROM responses r JOIN trials t ON t.id = r.trial_id "
            "JOIN participants p ON p.id = r.participant_id JOIN stimuli s ON s.id = t.stimulus_id "
            "WHERE t.kind = 'likert'"
        )).all()
    owned = [float(v) for g, c, v in rows if c in knowledge.match.get(g, [])]
    other = [float(v) for g, c, v in rows if c not in knowledge.match.get(g, [])]
    # 1.5 SD of the latent liking is about 1.5 scale points on a 1-7 scale (its ends at +-2 SD).
    assert statistics.mean(owned) - statistics.mean(other) > 0.9


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_careless_and_fast_bots_leave_the_traces_the_exclusions_look_for(app, load):
    slug = load()
    knowledge = _knowledge(app, slug)
    client = lambda: FlaskTransport(app.test_client())  # noqa: E731
    run_bots(client, knowledge, 6, profile="careless", seed=1, concurrency=1)
    run_bots(client, knowledge, 3, profile="fast", seed=2, concurrency=1)
    engine = app.extensions["culturelab.engine"]
    with engine.connect() as connection:
        failed_checks = connection.scalar(text(
            "SELECT count(*) FROM responses r JOIN trials t ON t.id = r.trial_id "
            "WHERE t.kind = 'attention' AND NOT r.correct"
        ))
        away = connection.scalar(text("SELECT count(*) FROM responses WHERE hidden_ms >= 5000"))
        fastest = connection.execute(text(
            "SELECT max(r.rt_ms) FROM responses r JOIN participants p ON p.id = r.participant_id "
            "GROUP BY p.id ORDER BY 1 LIMIT 3"
        )).scalars().all()
    assert failed_checks >= 2  # half of 12 checks, give or take chance
    assert away >= 5  # a quarter of the careless bots' 84 trials, give or take chance
    assert max(fastest) <= 250
