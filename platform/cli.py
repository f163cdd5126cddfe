"""The `culturelab` command: the composition root of the three components (docs/contracts.md).

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

from culturelab.platform.db import session_scope
from culturelab.platform.stimuli import StimulusSetError
from culturelab.platform.study import StudyError

EXAMPLE_STUDY = Path(__file__).parent / "examples" / "motif-preferences" / "study.yaml"


class InputError(click.ClickException):
    """Bad input: one line naming what is wrong, exit code 2."""

    exit_code = 2


class CultureLabGroup(FlaskGroup):
    """FlaskGroup plus subcommands imported on first use (the lazy-loading pattern of click's docs)."""

    # Flask's own commands still work but are not CultureLab's: kept out of --help.
    not_listed = {"run", "shell", "routes"}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Flask's --app, --env-file and --debug choose an app to run: CultureLab has one, built by create_app.
        self.params = [p for p in self.params if p.name not in ("app", "env_file", "debug")]

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
        "bots": ("culturelab.platform.cli_demo:bots", "Drive simulated participants through a running server."),
        "demo": ("culturelab.platform.cli_demo:demo", "Serve the example study with bots, a login and a report."),
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
            if name in self.not_listed:
                continue
            if name in self.lazy:
                rows.append((name, self.lazy[name][1]))
            elif (command := super().get_command(ctx, name)) is not None and not command.hidden:
                rows.append((name, command.get_short_help_str(limit=formatter.width - 20)))
        with formatter.section("Commands"):
            formatter.write_dl(rows)


def _create_app():
    """The app made for every platform command. It writes nothing (--help and validation leave no files
    behind): the commands that need the instance folder or the secret key call prepare_instance. Imported
    here, on first use, so that the generation and analysis commands never load the web app."""
    from culturelab.platform.app import create_app

    return create_app(write_instance=False)


@click.group(
    cls=CultureLabGroup,
    create_app=_create_app,
    add_version_option=False,
    load_dotenv=False,
)
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
    from culturelab.platform.app import prepare_instance
    from culturelab.platform.migrate import upgrade

    prepare_instance(current_app)
    upgrade(_engine(), revision)
    click.echo(f"database {_database()} is at {revision}")


def _database() -> str:
    """The database a command uses, as a person would look for it: a file's path, or the URL sans password."""
    url = _engine().url
    if url.get_backend_name() == "sqlite" and url.database:
        return url.database
    return url.render_as_string(hide_password=True)


def _require_schema() -> None:
    """Refuses to go on without a migrated database, naming the one it looked at (and never creating an empty
    SQLite file where a command happened to be started)."""
    from culturelab.platform.migrate import is_current

    url = _engine().url
    if url.get_backend_name() == "sqlite" and url.database and not Path(url.database).exists():
        raise InputError(
            f"no database at {url.database}: run `culturelab db upgrade` to create it, or point "
            "CULTURELAB_INSTANCE_PATH (or CULTURELAB_DATABASE_URL) at the one you meant"
        )
    if not is_current(_engine()):
        raise InputError(f"the database {_database()} has no schema or an old one: run `culturelab db upgrade`")


# -- studies --------------------------------------------------------------------------------------------


@main.group()
def study() -> None:
    """Study files: validate and load."""


def _read_checked(file: Path):
    """The study, after every check `study load` makes; all problems at once, one per line."""
    from culturelab.platform.study_load import check_study_file

    spec, problems = check_study_file(file)
    if problems:
        raise InputError(_problems(file, problems))
    return spec


def _problems(where, problems: list[str]) -> str:
    """One line for one problem; a count and one line each for several."""
    if len(problems) == 1:
        return f"{where}: {problems[0]}"
    return f"{where}: {len(problems)} problems:" + "".join(f"\n  - {p}" for p in problems)


@study.command("validate")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
def study_validate(file: Path) -> None:
    """Check a study file and its stimulus sets as `load` would, without a database; lists every problem."""
    spec = _read_checked(file)
    click.echo(
        f"ok: study {spec.slug!r}, {len(spec.questions)} question(s), "
        f"{len(spec.culture_groups)} culture group(s), languages {', '.join(spec.languages)}"
    )


@study.command("load")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--owner", metavar="EMAIL", help="Researcher account that owns the study (it sees, shares, exports it).")
@with_appcontext
def study_load(file: Path, owner: str | None) -> None:
    """Load (or safely update) a study and import its stimulus sets."""
    result = _load(file, owner)
    owned = f", owned by {owner}" if owner else ""
    click.echo(f"{result.action}: study {result.study.slug!r} in {_database()}{owned}")


def _load(file: Path, owner: str | None = None):
    from culturelab.platform import audit, ownership
    from culturelab.platform.study_load import load_study

    _require_schema()
    spec = _read_checked(file)
    try:
        with session_scope(current_app) as session:
            result = load_study(session, spec, file.parent, Path(current_app.config["MEDIA_DIR"]))
            session.flush()
            if owner is not None:
                ownership.add_member(session, result.study.slug, owner, ownership.OWNER)
            audit.record(session, "study.load", audit.cli_actor(), result.study.id, file=str(file), owner=owner,
                         outcome=result.action, spec_sha256=result.study.spec_sha256)
            return result
    except (StudyError, StimulusSetError, ownership.MembershipError) as exc:
        raise InputError(f"{file}: {exc}") from None


@study.command("share")
@click.argument("slug")
@click.argument("email")
@click.option("--role", type=click.Choice(["collaborator", "owner"]), default="collaborator", show_default=True)
@with_appcontext
def study_share(slug: str, email: str, role: str) -> None:
    """Let a researcher see, export and analyse a study (an owner also shares it and reads its audit log)."""
    from culturelab.platform import audit, ownership

    _require_schema()
    try:
        with session_scope(current_app) as session:
            member = ownership.share(session, slug, email, role, audit.cli_actor())
    except ownership.MembershipError as exc:
        raise InputError(str(exc)) from None
    click.echo(f"{email} is now {member.role} of study {slug!r}")


@study.command("close")
@click.argument("slug")
@with_appcontext
def study_close(slug: str) -> None:
    """Take no new participants (those who started may finish); `study reopen` undoes it."""
    _set_recruiting(slug, False)


@study.command("reopen")
@click.argument("slug")
@with_appcontext
def study_reopen(slug: str) -> None:
    """Take new participants again after `study close`."""
    _set_recruiting(slug, True)


def _study_id(session, slug: str) -> int:
    """The id of the study ``slug``, or the one-line error that there is none."""
    from sqlalchemy import select

    from culturelab.platform.models import Study

    study_id = session.scalar(select(Study.id).where(Study.slug == slug))
    if study_id is None:
        raise InputError(f"there is no study {slug!r}")
    return study_id


def _set_recruiting(slug: str, recruiting: bool) -> None:
    from culturelab.platform import audit
    from culturelab.platform.recruitment import set_recruiting

    _require_schema()
    with session_scope(current_app) as session:
        changed = set_recruiting(session, _study_id(session, slug), recruiting, audit.cli_actor())
    state = "open to new participants" if recruiting else "closed to new participants"
    click.echo(f"study {slug!r} is {'now' if changed else 'already'} {state}")


@study.command("release-idle")
@click.argument("slug")
@click.option("--minutes", type=click.FloatRange(min=1), default=None,
              help="Idle for this long [default: PLACE_IDLE_MINUTES, 30].")
@with_appcontext
def study_release_idle(slug: str, minutes: float | None) -> None:
    """Give back the quota places of participants with no answer for a while (they are timed out)."""
    from sqlalchemy import select

    from culturelab.platform import places
    from culturelab.platform.models import CultureGroup

    _require_schema()
    minutes = minutes or float(current_app.config.get("PLACE_IDLE_MINUTES", places.IDLE_MINUTES))
    with session_scope(current_app) as session:
        study_id = _study_id(session, slug)
        groups = session.scalars(select(CultureGroup.key).where(CultureGroup.study_id == study_id)).all()
        released = sum(places.release_idle(session.connection(), study_id, g, minutes) for g in groups)
    click.echo(f"gave back {released} place(s) of study {slug!r} (idle for {minutes:g} minutes or more)")


@study.command("delete-participant")
@click.argument("slug")
@click.argument("participant_id")
@with_appcontext
def study_delete_participant(slug: str, participant_id: str) -> None:
    """Delete a participant (the participant_id of the exports) and everything stored about them."""
    from culturelab.platform import audit
    from culturelab.platform.withdrawal import delete_participant

    _require_schema()
    with session_scope(current_app) as session:
        if not delete_participant(session, _study_id(session, slug), participant_id, audit.cli_actor()):
            raise InputError(f"study {slug!r} has no participant {participant_id!r}")
    click.echo(f"deleted participant {participant_id} of study {slug!r}")


# -- stimulus sets --------------------------------------------------------------------------------------


@main.group()
def stimuli() -> None:
    """Stimulus sets (Contract 1) from a lab's own images."""


@stimuli.command("make-set")
@click.argument("folder", type=click.Path(path_type=Path, file_okay=False))
@click.option("--out", required=True, type=click.Path(path_type=Path, file_okay=False), help="The set's folder.")
@click.option("--name", help="The set's name [default: FOLDER's name].")
def stimuli_make_set(folder: Path, out: Path, name: str | None) -> None:
    """Turn FOLDER/<culture>/<image> into a stimulus set: PNG copies, sha256 and sizes, method `human`."""
    from culturelab.platform.image_folder import make_set

    try:
        manifest = make_set(folder, out, name)
    except StimulusSetError as exc:
        problems = str(exc).splitlines()
        raise InputError(problems[0] if len(problems) == 1 else _problems(folder, problems)) from None
    per_culture = {c: sum(s["culture"] == c for s in manifest["stimuli"]) for c in manifest["cultures"]}
    click.echo(f"wrote {out}: " + ", ".join(f"{n} {c}" for c, n in per_culture.items()))


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
    """Write a study's data as a Frictionless data package (docs/contracts.md, Contract 2)."""
    from sqlalchemy import select

    from culturelab.platform import audit
    from culturelab.platform.export import export_study
    from culturelab.platform.models import Study

    _require_schema()
    try:
        # Read-only: on SQLite an export then takes no write lock, and participants' answers go on meanwhile.
        with session_scope(current_app, read_only=True) as session:
            counts = export_study(session, slug, out, fmt)
        with session_scope(current_app) as session:
            study_id = session.scalar(select(Study.id).where(Study.slug == slug))
            audit.record(session, "study.export", audit.cli_actor(), study_id, format=fmt, via="cli", out=str(out))
    except LookupError as exc:
        raise InputError(str(exc)) from None
    click.echo(f"wrote {out}: " + ", ".join(f"{n} {name}" for name, n in counts.items()))


# -- serving ----------------------------------------------------------------------------------------------


def default_workers() -> int:
    """Two processes per CPU core: with a few threads each they keep the cores busy while requests wait on
    the database, and fewer threads per process means less contention for each one's GIL (measured in
    docs/load.md: 4 x 4 used 13 % less CPU per request than 2 x 8 on 2 cores)."""
    return 2 * (os.cpu_count() or 1)


WORKER_CLASSES = {
    # Connections wait in an event loop; a request reaches one of the threads only once it has fully arrived
    # (asgi.py), so idle and slow (slowloris) clients cannot take the threads from participants.
    "async": "gunicorn.workers.gasgi.ASGIWorker",
    # gunicorn's threads read requests themselves: about a third of the CPU per request, but a client that
    # sends its request slowly holds a thread. Only behind a proxy that buffers requests (docs/load.md).
    "threads": "gthread",
}


def _serve(host: str, port: int, workers: int | None = None, threads: int = 4, worker_class: str = "async") -> None:
    from gunicorn.app.base import BaseApplication

    from culturelab.platform.asgi import asgi_app

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
            self.cfg.set("worker_class", WORKER_CLASSES[worker_class])
            if worker_class == "threads":
                self.cfg.set("threads", threads)
            else:
                # The asyncio loop and the pure-Python parser: gunicorn[fast]'s C parser pins an older gunicorn.
                self.cfg.set("asgi_loop", "asyncio")
                self.cfg.set("http_parser", "python")
            # A participant answers every few seconds: keeping the connection open between answers saves
            # a handshake each time. Requests mostly wait on the database (its commit's WAL flush above all).
            self.cfg.set("keepalive", 5)
            self.cfg.set("post_fork", post_fork)
            self.cfg.set("accesslog", None)
            # gunicorn's control socket would otherwise go to ~/.gunicorn; nothing of ours uses it.
            self.cfg.set("control_socket_disable", True)

        def load(self):
            return asgi_app(app, threads) if worker_class == "async" else app

    Server().run()


def _address(command):
    """The --host and --port options of the commands that serve."""
    command = click.option("--port", default=5000, show_default=True, type=click.IntRange(1, 65535))(command)
    return click.option("--host", default="127.0.0.1", show_default=True)(command)


def _where() -> str:
    return f"instance folder {current_app.instance_path}, database {_database()}"


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
@click.option(
    "--worker-class",
    type=click.Choice(sorted(WORKER_CLASSES)),
    default="async",
    show_default=True,
    help="async: slow or idle clients hold no thread (serving the internet directly); threads: less CPU per "
    "request, for use behind a proxy that buffers requests.",
)
@with_appcontext
def serve(host: str, port: int, workers: int, threads: int, worker_class: str) -> None:
    """Serve the platform with gunicorn."""
    from culturelab.platform.app import prepare_instance

    _require_schema()
    prepare_instance(current_app)
    click.echo(f"CultureLab on http://{host}:{port}/  (researchers: /researcher/)\n{_where()}")
    _serve(host, port, workers, threads, worker_class)


if __name__ == "__main__":
    sys.exit(main())
