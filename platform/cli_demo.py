"""`culturelab bots` and `culturelab demo`: simulated participants over HTTP, and the whole loop a newcomer sees
first (loaded on first use by cli.py, like the generation and analysis commands)."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
from pathlib import Path

import click
from flask import current_app
from flask.cli import with_appcontext

from culturelab.platform.app import prepare_instance
from culturelab.platform.cli import (
    EXAMPLE_STUDY,
    InputError,
    _address,
    _database,
    _engine,
    _load,
    _require_schema,
    _where,
)
from culturelab.platform.db import session_scope
from culturelab.platform.stimuli import StimulusSetError
from culturelab.platform.study import StudyError

# -- bots ---------------------------------------------------------------------------------------------------


def _knowledge(slug: str, study_file: Path | None):
    """What the bots need to know of the study: from its file, else from this instance's database."""
    from culturelab.platform.bots import StudyKnowledge

    if study_file is not None:
        try:
            knowledge = StudyKnowledge.from_study_file(study_file)
        except (StudyError, StimulusSetError) as exc:
            raise InputError(f"{study_file}: {exc}") from None
        if knowledge.slug != slug:
            raise InputError(f"{study_file} is the study {knowledge.slug!r}, not {slug!r}")
        return knowledge
    _require_schema()
    media = Path(current_app.config["MEDIA_DIR"])
    try:
        with session_scope(current_app) as session:
            knowledge = StudyKnowledge.from_database(session, slug, media)
    except FileNotFoundError:
        raise InputError(
            f"the images of {slug!r} are not in {media}: run the bots in the server's instance folder, or give "
            "--study-file FILE"
        ) from None
    if knowledge is None:
        raise InputError(
            f"no study {slug!r} in the database {_database()}: for a server elsewhere, give --study-file FILE"
        )
    return knowledge


def _run_bots(url: str, knowledge, n: int, **options):
    """Runs the bots with a progress bar; returns (tally, seconds)."""
    from tqdm import tqdm

    from culturelab.platform.bots import HttpTransport, run_bots

    HttpTransport(url).close()  # a malformed URL fails here, before any thread starts
    return run_bots(
        lambda: HttpTransport(url), knowledge, n,
        progress=lambda it: tqdm(it, total=n, desc="participants", unit="participant"), **options,
    )


def _bots_summary(tally, seconds: float) -> str:
    rate = tally.responses / seconds if seconds else 0.0
    line = (
        f"bots: {tally.completed} completed, {tally.failed} failed; {tally.responses} responses and "
        f"{tally.images} images in {seconds:.1f} s ({rate:.1f} responses/s)"
    )
    if tally.errors:
        line += "\nserver errors: " + ", ".join(f"{kind} x{count}" for kind, count in tally.errors.most_common())
    return line


@click.command("bots")
@click.option("--study", "slug", required=True, help="The study's slug.")
@click.option("--n", default=10, show_default=True, type=click.IntRange(1), help="Participants to simulate.")
@click.option("--url", default="http://127.0.0.1:5000", show_default=True, help="The server's address.")
@click.option(
    "--profile", type=click.Choice(["honest", "careless", "fast", "mix"]), default="honest", show_default=True,
    help="How the bots answer (mix: 1 in 12 careless, 1 in 25 fast, the rest honest).",
)
@click.option("--in-group-d", default=0.0, show_default=True, type=float,
              help="Planted in-group preference, in SD units of the latent liking.")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--concurrency", default=8, show_default=True, type=click.IntRange(1, 512),
              help="Participants at once (one thread and connection each).")
@click.option("--think-ms", default=0, show_default=True, type=click.IntRange(0),
              help="Mean pause before each step of a participant (0.5x to 1.5x).")
@click.option("--study-file", type=click.Path(path_type=Path, dir_okay=False),
              help="The study file and its stimulus sets, for a server whose database is not this instance's.")
@with_appcontext
def bots(slug: str, n: int, url: str, profile: str, in_group_d: float, seed: int, concurrency: int,
         think_ms: int, study_file: Path | None) -> None:
    """Drive simulated participants through the participant API of a running server (oTree-style bots)."""
    knowledge = _knowledge(slug, study_file)
    try:
        tally, seconds = _run_bots(url, knowledge, n, profile=None if profile == "mix" else profile,
                                   in_group_d=in_group_d, seed=seed, concurrency=concurrency,
                                   think_s=think_ms / 1000)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    click.echo(_bots_summary(tally, seconds))
    if tally.failed:
        sys.exit(1)


# -- demo ---------------------------------------------------------------------------------------------------

DEMO_RESEARCHER = "demo@example.org"


def _demo_researcher() -> str:
    """The demo's researcher account, with a new password each run (printed once, never stored in clear)."""
    from sqlalchemy import select
    from werkzeug.security import generate_password_hash

    from culturelab.platform.models import Researcher
    from culturelab.platform.researcher import create_researcher

    password = secrets.token_urlsafe(12)
    with session_scope(current_app) as session:
        account = session.scalar(select(Researcher).where(Researcher.email == DEMO_RESEARCHER))
        if account is None:
            create_researcher(session, DEMO_RESEARCHER, password)
        else:
            account.password_hash = generate_password_hash(password)
    return password


def _port_free(host: str, port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def _start_server(host: str, port: int, log: Path) -> subprocess.Popen:
    """`culturelab serve` in a child process, returned once it answers (its output goes to ``log``)."""
    import urllib.request

    env = {**os.environ, "CULTURELAB_INSTANCE_PATH": current_app.instance_path}
    with log.open("w") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "culturelab.platform.cli", "serve", "--host", host, "--port", str(port)],
            env=env, stdout=out, stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(f"http://{host}:{port}/", timeout=2).close()
            return server
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                server.kill()
                raise InputError(f"the server did not start; its log: {log}") from None
            time.sleep(0.2)


def _completed(slug: str) -> int:
    from sqlalchemy import func, select

    from culturelab.platform.models import Participant, Study

    with session_scope(current_app) as session:
        return session.scalar(
            select(func.count(Participant.id)).join(Study).where(Study.slug == slug, Participant.status == "completed")
        )


@click.command("demo")
@_address
@click.option("--participants", default=120, show_default=True, type=click.IntRange(0),
              help="Simulated participants the example study should have (only the missing ones are run).")
@with_appcontext
def demo(host: str, port: int, participants: int) -> None:
    """Serve the bilingual example study with simulated participants, a researcher account and a report."""
    from culturelab.platform.bots import StudyKnowledge
    from culturelab.platform.migrate import upgrade
    from culturelab.platform.reports import ReportError, build_report

    if not _port_free(host, port):
        raise InputError(f"{host}:{port} is already in use: stop what runs there, or choose another --port")
    prepare_instance(current_app)
    click.echo(f"CultureLab demo: {_where()}")
    upgrade(_engine())
    password = _demo_researcher()
    result = _load(EXAMPLE_STUDY, owner=DEMO_RESEARCHER)
    slug = result.study.slug
    click.echo(f"example study {slug!r} {result.action}, owned by {DEMO_RESEARCHER}")
    log = Path(current_app.instance_path) / "demo-server.log"
    server = _start_server(host, port, log)
    base = f"http://{host}:{port}"
    try:
        missing = max(0, participants - _completed(slug))
        if missing:
            click.echo(f"running {missing} simulated participants (planted in-group preference d = 0.5, "
                       "a few careless and too-fast ones) through the API")
            tally, seconds = _run_bots(base, StudyKnowledge.from_study_file(EXAMPLE_STUDY), missing,
                                       profile=None, in_group_d=0.5, seed=_completed(slug), concurrency=8)
            click.echo(_bots_summary(tally, seconds))
        click.echo("analysing the data (culturelab analyze)")
        try:
            report = build_report(current_app, slug)
        except ReportError as exc:
            report = None
            click.echo(f"warning: {exc}; the study is served all the same", err=True)
        click.echo(
            "\n".join([
                "",
                "CultureLab demo is running.",
                f"  take the study:  {base}/s/{slug}   (English or Chinese)",
                f"  researcher:      {base}/researcher/   email {DEMO_RESEARCHER}   password {password}",
                f"  report:          {base}/researcher/studies/{slug}/report   (file: {report or 'not made'})",
                f"  data:            {current_app.instance_path}   (server log: {log})",
                "  stop:            Ctrl-C",
            ])
        )
        server.wait()
    except KeyboardInterrupt:
        click.echo("stopping")
    finally:
        server.terminate()
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
