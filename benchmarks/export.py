"""Export benchmark: seconds and peak memory to export a study as CSV and as Parquet, through the command
line (`culturelab export`) and through the researcher's web download (the streamed zip).

Fills a database (SQLite file, or a throw-away schema of a PostgreSQL database) with a study loaded through
the normal path and bulk-inserted participants, trials and responses, then runs each export in a fresh
Python process, so that its peak resident memory (ru_maxrss) is the export's own, imports included. Prints
ONE JSON object.

    python3 benchmarks/export.py [--participants 2500] [--trials 40] [--formats csv parquet] [--via cli web]
                                 [--database sqlite | --database postgresql+psycopg://user@host/db]

The target (issue 12): 1,000,000 responses (--participants 25000 --trials 40) in < 20 s and < 300 MB.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import click
from sqlalchemy import create_engine, insert, select, text

sys.path.insert(0, str(Path(__file__).parents[1] / "tests" / "platform"))
from culturelab.platform.app import create_app  # noqa: E402
from culturelab.platform.db import session_scope  # noqa: E402
from culturelab.platform.migrate import upgrade  # noqa: E402
from culturelab.platform.models import Participant, Response, Stimulus, Study, Trial, utcnow  # noqa: E402
from culturelab.platform.study import read_study  # noqa: E402
from culturelab.platform.study_load import load_study  # noqa: E402

from studykit import write_study  # noqa: E402  (the test kit builds the stimulus set and study file)

SLUG = "motif-test"
RESEARCHER, PASSWORD = "bench@example.org", "benchmark password"


def fill(app, n_participants: int, n_trials: int) -> None:
    with session_scope(app) as session:
        study_id = session.scalar(select(Study.id))
        stimuli = session.scalars(select(Stimulus.id)).all()
        now = utcnow()
        for start in range(0, n_participants, 500):
            people = [
                dict(study_id=study_id, token=uuid.uuid4().hex, pseudonym=f"p-{uuid.uuid4().hex[:16]}",
                     source="link", recruitment={}, language="en", status="completed", consent=True,
                     culture_group="east_asian", seed=i, ordinal=i, n_trials=n_trials, n_answered=n_trials,
                     started_at=now, completed_at=now)
                for i in range(start, min(start + 500, n_participants))
            ]
            ids = session.scalars(insert(Participant).returning(Participant.id), people).all()
            trials = [dict(participant_id=pid, position=k, kind="likert", question_id="liking",
                           stimulus_id=stimuli[k % len(stimuli)]) for pid in ids for k in range(n_trials)]
            trial_ids = session.scalars(insert(Trial).returning(Trial.id, sort_by_parameter_order=True), trials).all()
            session.execute(insert(Response), [
                dict(response_id=str(uuid.uuid4()), participant_id=t["participant_id"], trial_id=tid,
                     value=4, rt_ms=900, created_at=now)
                for t, tid in zip(trials, trial_ids, strict=True)
            ])


def _config(database_url: str, data_dir: str) -> dict:
    return {"DATABASE_URL": database_url, "DATA_DIR": data_dir, "SECRET_KEY": "bench", "TESTING": True,
            "WTF_CSRF_ENABLED": False, "RATELIMIT_ENABLED": False}


def measure(database_url: str, data_dir: str, fmt: str, via: str, out: Path) -> dict:
    """One export in this (fresh) process: seconds, bytes written, peak resident memory."""
    from culturelab.platform.cli import main as cli

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    began = time.perf_counter()
    if via == "cli":
        os.environ.update(CULTURELAB_DATABASE_URL=database_url, CULTURELAB_DATA_DIR=data_dir,
                          CULTURELAB_SECRET_KEY="bench")
        cli.main(["export", "--study", SLUG, "--out", str(out), "--format", fmt], standalone_mode=False)
        size = sum(p.stat().st_size for p in out.iterdir())
    else:
        app = create_app(_config(database_url, data_dir))
        client = app.test_client()
        signed_in = client.post("/researcher/login", data={"email": RESEARCHER, "password": PASSWORD})
        assert signed_in.status_code == 302, signed_in.status_code
        response = client.get(f"/researcher/studies/{SLUG}/export.zip?format={fmt}", buffered=False)
        assert response.status_code == 200, response.status_code
        size = 0
        for chunk in response.response:  # as a browser receives it, chunk by chunk
            size += len(chunk)
        response.close()
    seconds = time.perf_counter() - began
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"format": fmt, "via": via, "seconds": round(seconds, 2), "bytes": size,
            "peak_rss_mb": round(peak, 1), "rss_before_mb": round(before, 1)}


def _schema_url(base: str) -> tuple[str, str]:
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    engine = create_engine(base)
    with engine.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    engine.dispose()
    sep = "&" if "?" in base else "?"
    return f"{base}{sep}options=-csearch_path%3D{schema}", schema


@click.command()
@click.option("--participants", type=int, default=2500, show_default=True)
@click.option("--trials", type=int, default=40, show_default=True)
@click.option("--formats", multiple=True, type=click.Choice(["csv", "parquet"]), default=["csv", "parquet"])
@click.option("--via", "vias", multiple=True, type=click.Choice(["cli", "web"]), default=["cli", "web"])
@click.option("--database", default="sqlite", show_default=True, help="sqlite, or a PostgreSQL URL to use a "
              "throw-away schema of.")
@click.option("--measure", "one", hidden=True, nargs=4, help="internal: URL DATA_DIR FORMAT VIA")
def main(participants: int, trials: int, formats: tuple[str, ...], vias: tuple[str, ...], database: str,
         one: tuple[str, str, str, str] | None) -> None:
    if one:
        url, data_dir, fmt, via = one
        print(json.dumps(measure(url, data_dir, fmt, via, Path(data_dir) / f"out-{fmt}-{via}")))
        return
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        url, schema = (f"sqlite:///{folder / 'bench.sqlite3'}", None) if database == "sqlite" else _schema_url(database)
        try:
            app = create_app(_config(url, str(folder / "data")))
            upgrade(app.extensions["culturelab.engine"])
            study = write_study(folder)
            with session_scope(app) as session:
                load_study(session, read_study(study), folder, Path(app.config["MEDIA_DIR"]))
                from culturelab.platform import ownership
                from culturelab.platform.researcher import create_researcher

                create_researcher(session, RESEARCHER, PASSWORD)
                session.flush()
                ownership.add_member(session, SLUG, RESEARCHER, ownership.OWNER)
            began = time.perf_counter()
            fill(app, participants, trials)
            filled = time.perf_counter() - began
            if schema:
                # A live database has planner statistics (autovacuum keeps them); a bulk fill has none yet, and
                # without them PostgreSQL plans the per-participant counts as scans (16x slower at 40,000 rows).
                with app.extensions["culturelab.engine"].begin() as connection:
                    connection.exec_driver_sql("ANALYZE")
            app.extensions["culturelab.engine"].dispose()
            runs = []
            for fmt in formats:
                for via in vias:
                    child = subprocess.run(
                        [sys.executable, __file__, "--measure", url, str(folder / "data"), fmt, via],
                        capture_output=True, text=True, check=True,
                    )
                    runs.append(json.loads(child.stdout.strip().splitlines()[-1]))
        finally:
            if schema:
                engine = create_engine(database)
                with engine.begin() as connection:
                    connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
                engine.dispose()
    print(json.dumps({
        "benchmark": "export", "database": "sqlite" if database == "sqlite" else "postgresql",
        "participants": participants, "responses": participants * trials, "fill_seconds": round(filled, 1),
        "cpus": os.cpu_count(), "runs": runs,
    }))


if __name__ == "__main__":
    main()
