"""The `culturelab` command: the composition root of the three components (DESIGN.md).

A FlaskGroup (Flask's CLI conventions: `culturelab routes`, `culturelab shell` come with it) whose
platform commands run inside an app context. The generation and analysis commands live in their own
packages and are imported only when invoked, so `culturelab generate` never builds the web app and
`culturelab serve` never imports torch.
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path

import click
from flask import current_app
from flask.cli import FlaskGroup, with_appcontext

from culturelab.platform.app import create_app
from culturelab.platform.db import session_scope
from culturelab.platform.stimuli import StimulusSetError, read_manifest, verify_files
from culturelab.platform.study import StudyError, read_study

EXAMPLE_STUDY = Path(__file__).parent / "examples" / "motif-preferences" / "study.yaml"


class InputError(click.ClickException):
    """Bad input: one line naming what is wrong, exit code 2."""

    exit_code = 2


class CultureLabGroup(FlaskGroup):
    """FlaskGroup plus subcommands imported on first use (the lazy-loading pattern of click's docs)."""

    # name -> (module:attribute, the short help shown by --help without importing the module)
    lazy = {
        "generate": (
            "culturelab.generation.cli:generate",
            "Train the culture-conditioned GAN, sample stimulus sets.",
        ),
        "analyze": (
            "culturelab.analysis.cli:analyze",
            "Analyse an export data package: report.html, results.json.",
        ),
        "power": ("culturelab.analysis.cli:power", "Simulation-based power for planning a study."),
        "simulate-data": ("culturelab.analysis.cli:simulate_data", "Write a simulated export package."),
    }

    def list_commands(self, ctx):
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx, cmd_name):
        if cmd_name in self.lazy:
            module_name, attr = self.lazy[cmd_name][0].split(":")
            return getattr(importlib.import_module(module_name), attr)
        return super().get_command(ctx, cmd_name)

    def main(self, *args, standalone_mode: bool = True, **kwargs):
        """Usage errors too are one line (no usage banner), for every subcommand, with click's exit codes."""
        if not standalone_mode:
            return super().main(*args, standalone_mode=False, **kwargs)
        try:
            result = super().main(*args, standalone_mode=False, **kwargs)
        except click.ClickException as exc:
            click.echo(f"Error: {exc.format_message()}", err=True)
            sys.exit(exc.exit_code)
        except click.Abort:
            click.echo("Aborted.", err=True)
            sys.exit(1)
        sys.exit(result if isinstance(result, int) else 0)

    def format_commands(self, ctx, formatter):
        rows = []
        for name in self.list_commands(ctx):
            if name in self.lazy:
                rows.append((name, self.lazy[name][1]))
            elif (command := super().get_command(ctx, name)) is not None and not command.hidden:
                rows.append((name, command.get_short_help_str(limit=formatter.width - 20)))
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=CultureLabGroup, create_app=create_app, add_version_option=False, load_dotenv=False)
@click.version_option(package_name="culturelab")
def main() -> None:
    """CultureLab: generate culture-conditioned stimuli, run rating studies, analyse the results."""


def _engine():
    return current_app.extensions["culturelab.engine"]


# -- database -------------------------------------------------------------------------------------------


@main.group()
def db() -> None:
    """Database schema (Alembic migrations)."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True)
@with_appcontext
def db_upgrade(revision: str) -> None:
    """Create or upgrade the database schema."""
    from culturelab.platform.migrate import upgrade

    upgrade(_engine(), revision)
    click.echo(f"database at {_engine().url.render_as_string(hide_password=True)} is at {revision}")


def _require_schema() -> None:
    from culturelab.platform.migrate import is_current

    if not is_current(_engine()):
        raise InputError("the database schema is missing or out of date: run `culturelab db upgrade` first")


# -- studies --------------------------------------------------------------------------------------------


@main.group()
def study() -> None:
    """Study files: validate and load."""


def _read_checked(file: Path):
    try:
        spec = read_study(file)
        for folder in spec.stimulus_sets:
            manifest, _ = read_manifest((file.parent / folder).resolve())
            verify_files((file.parent / folder).resolve(), manifest)
    except (StudyError, StimulusSetError) as exc:
        raise InputError(f"{file}: {exc}") from None
    return spec


@study.command("validate")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
def study_validate(file: Path) -> None:
    """Check a study file and its stimulus sets without touching the database."""
    spec = _read_checked(file)
    click.echo(
        f"ok: study {spec.slug!r}, {len(spec.questions)} question(s), "
        f"{len(spec.culture_groups)} culture group(s), languages {', '.join(spec.languages)}"
    )


@study.command("load")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@with_appcontext
def study_load(file: Path) -> None:
    """Load (or safely update) a study and import its stimulus sets."""
    result = _load(file)
    click.echo(f"{result.action}: study {result.study.slug!r}")


def _load(file: Path):
    from culturelab.platform.study_load import load_study

    _require_schema()
    spec = _read_checked(file)
    try:
        with session_scope(current_app) as session:
            result = load_study(session, spec, file.parent, Path(current_app.config["MEDIA_DIR"]))
            session.flush()
            return result
    except (StudyError, StimulusSetError) as exc:
        raise InputError(f"{file}: {exc}") from None


# -- researchers -----------------------------------------------------------------------------------------


@main.group()
def researcher() -> None:
    """Researcher accounts for the web pages."""


@researcher.command("create")
@click.argument("email")
@click.password_option(help="Prompted for when not given.")
@with_appcontext
def researcher_create(email: str, password: str) -> None:
    """Create a researcher account."""
    from sqlalchemy.exc import IntegrityError

    from culturelab.platform.researcher import create_researcher

    _require_schema()
    try:
        with session_scope(current_app) as session:
            create_researcher(session, email, password)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    except IntegrityError:
        raise InputError(f"a researcher with the email {email!r} already exists") from None
    click.echo(f"created researcher {email}")


# -- export -----------------------------------------------------------------------------------------------


@main.command("export")
@click.option("--study", "slug", required=True, help="The study's slug.")
@click.option(
    "--out", required=True, type=click.Path(path_type=Path, file_okay=False), help="Folder to write."
)
@click.option("--format", "fmt", type=click.Choice(["csv", "parquet"]), default="csv", show_default=True)
@with_appcontext
def export(slug: str, out: Path, fmt: str) -> None:
    """Write a study's data as a Frictionless data package (DESIGN.md, Contract 2)."""
    from culturelab.platform.export import export_study

    _require_schema()
    try:
        with session_scope(current_app) as session:
            counts = export_study(session, slug, out, fmt)
    except LookupError as exc:
        raise InputError(str(exc)) from None
    click.echo(f"wrote {out}: " + ", ".join(f"{n} {name}" for name, n in counts.items()))


# -- serving ----------------------------------------------------------------------------------------------


def default_workers() -> int:
    """Two processes per CPU core: with a few threads each they keep the cores busy while requests wait on
    the database, and fewer threads per process means less contention for each one's GIL (measured in
    docs/load.md: 4 x 4 used 13 % less CPU per request than 2 x 8 on 2 cores)."""
    return 2 * (os.cpu_count() or 1)


def _serve(host: str, port: int, workers: int | None = None, threads: int = 4) -> None:
    from gunicorn.app.base import BaseApplication

    app = current_app._get_current_object()
    engine = _engine()

    def post_fork(_server, _worker):
        # The app (and its connection pool) was built before the fork; a worker must open its own
        # connections rather than share the parent's sockets (SQLAlchemy's "pooling with multiprocessing").
        engine.dispose(close=False)

    class Server(BaseApplication):
        def load_config(self):
            self.cfg.set("bind", f"{host}:{port}")
            self.cfg.set("workers", workers or default_workers())
            # Threads: a request mostly waits on the database (its commit's WAL flush above all).
            self.cfg.set("worker_class", "gthread")
            self.cfg.set("threads", threads)
            # A participant answers every few seconds: keeping the connection open between answers saves
            # a handshake each time (idle kept-alive connections wait in the worker's poller, not a thread).
            self.cfg.set("keepalive", 5)
            self.cfg.set("post_fork", post_fork)
            self.cfg.set("accesslog", None)

        def load(self):
            return app

    Server().run()


def _address(command):
    """The --host and --port options of the commands that serve."""
    command = click.option("--port", default=5000, show_default=True, type=click.IntRange(1, 65535))(command)
    return click.option("--host", default="127.0.0.1", show_default=True)(command)


@main.command("serve")
@_address
@click.option(
    "--workers",
    default=default_workers,
    show_default="2 per CPU core",
    type=click.IntRange(1, 64),
    help="gunicorn worker processes (they share the database, nothing else).",
)
@click.option(
    "--threads",
    default=4,
    show_default=True,
    type=click.IntRange(1, 256),
    help="Request threads per worker process.",
)
@with_appcontext
def serve(host: str, port: int, workers: int, threads: int) -> None:
    """Serve the platform with gunicorn."""
    _require_schema()
    click.echo(f"CultureLab on http://{host}:{port}/  (researchers: /researcher/)")
    _serve(host, port, workers, threads)


@main.command("demo")
@_address
@with_appcontext
def demo(host: str, port: int) -> None:
    """Set up the database, load the bundled bilingual example study and serve it."""
    from culturelab.platform.migrate import upgrade

    upgrade(_engine())
    result = _load(EXAMPLE_STUDY)
    click.echo(f"example study {result.study.slug!r} {result.action}")
    click.echo(f"take it at  http://{host}:{port}/s/{result.study.slug}")
    _serve(host, port)


if __name__ == "__main__":
    sys.exit(main())
