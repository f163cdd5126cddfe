"""benchmarks/load.py end to end, small: real `culturelab serve` (gunicorn, several workers), real clients.

Not a timing test (the figures are the benchmark's job): it checks that every acknowledged answer is in
the database and that the JSON carries what docs/load.md describes.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import make_url

SCRIPT = Path(__file__).parents[2] / "benchmarks" / "load.py"
SMALL = ["--participants", "8", "--trials", "4", "--think-ms", "0", "--ramp-s", "0", "--workers", "2",
         "--threads", "2"]


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=300,
                          check=False)


def check(result: subprocess.CompletedProcess, database: str) -> None:
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)  # one JSON object, nothing else on stdout
    assert report["database"] == database
    assert report["completed"] == 8 and report["workers"] == 2
    assert report["errors"] == 0 and report["lost"] == 0
    assert report["responses_acknowledged"] == report["responses_stored"] == 8 * (4 + 2)
    assert report["responses_per_s"] > 0 and 0 < report["p50_ms"] <= report["p99_ms"]
    assert set(report["cpu_ms_per_request"]) == {"server", "database", "client"}


@pytest.mark.slow
def test_every_answer_is_stored_with_two_workers_on_sqlite():
    check(run(*SMALL, "--database", "sqlite"), "sqlite")


@pytest.mark.slow
@pytest.mark.postgres
def test_every_answer_is_stored_with_two_workers_on_postgresql(postgres_url):
    server = make_url(postgres_url).set(database="postgres").render_as_string(hide_password=False)
    check(run(*SMALL, "--postgres-server", server), "postgresql")


def test_an_unreachable_database_is_one_line_and_exit_code_2():
    result = run("--postgres-server", "postgresql+psycopg://postgres@127.0.0.1:1/postgres")
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "cannot use the database" in result.stderr
