"""Export memory benchmark: the data package is streamed, so peak memory must not grow with the study.

Fills an SQLite database with two study sizes (bulk inserts of participants, trials and responses for
a study loaded through the normal path), exports each as CSV and Parquet, and prints ONE JSON object with
the rows written, seconds and the peak of Python allocations (tracemalloc) during each export.

    python3 benchmarks/export.py [--participants 500 5000] [--trials 40]
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
import tracemalloc
import uuid
from pathlib import Path

import click
from sqlalchemy import insert, select

sys.path.insert(0, str(Path(__file__).parents[1] / "tests" / "platform"))
from culturelab.platform.app import create_app  # noqa: E402
from culturelab.platform.db import session_scope  # noqa: E402
from culturelab.platform.export import export_study  # noqa: E402
from culturelab.platform.migrate import upgrade  # noqa: E402
from culturelab.platform.models import Participant, Response, Stimulus, Study, Trial, utcnow  # noqa: E402
from culturelab.platform.study import read_study  # noqa: E402
from culturelab.platform.study_load import load_study  # noqa: E402

from studykit import write_study  # noqa: E402  (the test kit builds the stimulus set and study file)


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


@click.command()
@click.option("--participants", "sizes", type=int, multiple=True, default=[500, 5000], show_default=True)
@click.option("--trials", type=int, default=40, show_default=True)
def main(sizes: tuple[int, ...], trials: int) -> None:
    results = []
    for n in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            app = create_app({"DATABASE_URL": f"sqlite:///{folder / 'bench.sqlite3'}", "DATA_DIR": str(folder / "data"),
                              "SECRET_KEY": "bench"})
            upgrade(app.extensions["culturelab.engine"])
            study = write_study(folder)
            with session_scope(app) as session:
                load_study(session, read_study(study), folder, Path(app.config["MEDIA_DIR"]))
            fill(app, n, trials)
            for fmt in ("csv", "parquet"):
                tracemalloc.start()
                began = time.perf_counter()
                with session_scope(app) as session:
                    counts = export_study(session, "motif-test", folder / f"out-{fmt}", fmt)
                seconds = time.perf_counter() - began
                peak = tracemalloc.get_traced_memory()[1]
                tracemalloc.stop()
                results.append({"participants": n, "responses": counts["responses"], "format": fmt,
                                "seconds": round(seconds, 2), "peak_python_mb": round(peak / 2**20, 1)})
            app.extensions["culturelab.engine"].dispose()
    print(json.dumps({"benchmark": "export", "runs": results}))


if __name__ == "__main__":
    main()
