"""Load benchmark of the participant API: N simulated participants against `culturelab serve` (gunicorn).

It sets up a fresh database (a new PostgreSQL database on the local server, dropped at the end, or an
SQLite file), loads a generated study through the real CLI (`culturelab db upgrade`, `culturelab study
load`), starts `culturelab serve` on a free loopback port and walks every participant through the API
the way the browser page does: create -> consent -> background -> answer every trial, each answer's
reply carrying the next trial. Each simulated participant waits a think time before each step.

The load generator shares the machine's cores with the server and the database, so it is cheap: each
participant is a greenlet (gevent) with its own keep-alive connection (geventhttpclient), all in one
process by default.

Prints ONE JSON object: throughput of stored responses, p50/p99 latency (of the answer POSTs and of all
requests), errors, and `lost`: answers the clients were acknowledged (201, or 200 for a replay) that
are not in the database afterwards.

    python3 benchmarks/load.py                      # 300 participants on PostgreSQL, 2 workers per core
    python3 benchmarks/load.py --database sqlite
    python3 benchmarks/load.py --database-url postgresql+psycopg://postgres@127.0.0.1:5432/mydb
"""

from __future__ import annotations

import http.client
import json
import multiprocessing
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import click
import gevent
import yaml
from geventhttpclient import HTTPClient
from geventhttpclient.response import HTTPConnectionClosed, HTTPParseError
from sqlalchemy import create_engine, make_url, select, text
from sqlalchemy.exc import ArgumentError, OperationalError

from culturelab.platform import bots
from culturelab.platform.bots import Reply
from culturelab.platform.cli import WORKER_CLASSES, default_workers

sys.path.insert(0, str(Path(__file__).parents[1] / "tests" / "platform"))
from studykit import make_stimulus_set  # noqa: E402  (the test kit writes the stimulus set)

CULTURES = ["seigaiha", "girih", "kente", "meander", "ice_ray"]
GROUPS = ["east_asian", "west_african", "european"]
SLUG = "load-test"


class InputError(click.ClickException):
    """Bad input: one line naming what is wrong, exit code 2 (the project's CLI convention)."""

    exit_code = 2


# -- setup ------------------------------------------------------------------------------------------------

def write_study(folder: Path, trials: int) -> Path:
    """A Contract 1 stimulus set of small PNGs (the tests' kit) and a study file over it (three question kinds)."""
    make_stimulus_set(folder / "stimuli", cultures=CULTURES, per_culture=8, size=16, name="load-test")
    study = {
        "slug": SLUG,
        "title": {"en": "Load test"},
        "languages": ["en"],
        "culture_groups": [{"id": g, "label": {"en": g}} for g in GROUPS],
        "stimulus_sets": ["stimuli"],
        "match": {"east_asian": ["seigaiha", "ice_ray"], "west_african": ["kente"], "european": ["meander"]},
        "questions": [
            {"id": "liking", "kind": "likert", "scale": {"min": 1, "max": 7},
             "text": {"en": "How much do you like it?"}},
            {"id": "beauty", "kind": "slider", "text": {"en": "How beautiful is it?"}},
            {"id": "preference", "kind": "choice", "text": {"en": "Which do you prefer?"}},
        ],
        "design": {"trials_per_participant": trials, "order": "latin_square", "balance": ["stimulus_culture"],
                   "attention_checks": 2},
        "recruitment": {"completion_code": "LOADTEST"},
        "consent": {"en": "You agree to take part."},
    }
    path = folder / "study.yaml"
    path.write_text(yaml.safe_dump(study))
    return path


@contextmanager
def fresh_postgres(server_url: str):
    """A new database on the server (named for this process), dropped afterwards."""
    name = f"culturelab_bench_{os.getpid()}"
    admin = create_engine(make_url(server_url).set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def culturelab(env: dict[str, str], *args: str) -> None:
    result = subprocess.run([sys.executable, "-m", "culturelab.platform.cli", *args], env=env,
                            capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise click.ClickException(f"culturelab {' '.join(args)} failed: {result.stderr.strip()[-500:]}")


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of these processes so far (Linux /proc; 0 for one that is gone)."""
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, IndexError):
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def server_pids(pid: int) -> list[int]:
    """The gunicorn arbiter and its workers."""
    try:
        return [pid, *map(int, Path(f"/proc/{pid}/task/{pid}/children").read_text().split())]
    except FileNotFoundError:
        return [pid]


def database_pids(url: str) -> list[int]:
    """PostgreSQL backends serving this database (their title names it); none for SQLite."""
    name = make_url(url).database or ""
    if make_url(url).get_backend_name() != "postgresql":
        return []
    pids = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            title = cmdline.read_bytes()
        except OSError:
            continue
        if title.startswith(b"postgres:") and f" {name} ".encode() in title:
            pids.append(int(cmdline.parent.name))
    return pids


@contextmanager
def server(env: dict[str, str], port: int, workers: int, threads: int, log: Path, worker_class: str = "async"):
    """`culturelab serve` as a subprocess, yielded (its pid) once it answers on the port."""
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "culturelab.platform.cli", "serve", "--port", str(port),
             "--workers", str(workers), "--threads", str(threads), "--worker-class", worker_class],
            env=env, stdout=out, stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise click.ClickException(f"the server exited with {process.returncode}: {log.read_text()[-500:]}")
            probe = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            try:
                probe.request("GET", "/api/v1/participants/x")
                if probe.getresponse().status == 404:  # the API answers (an unknown participant)
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise click.ClickException("the server did not start within 60 s") from None
                time.sleep(0.2)
            finally:
                probe.close()
        yield process.pid
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# -- the simulated participants ---------------------------------------------------------------------------

class GeventTransport:
    """The project's bot (culturelab.platform.bots) over one keep-alive gevent connection, like a browser tab.
    An answer whose connection fails after sending is sent again with the same response_id (the page does
    the same; the server stores it once), up to twice."""

    def __init__(self, port: int, tally: Tally):
        self.http = HTTPClient("127.0.0.1", port, concurrency=1, connection_timeout=10, network_timeout=60)
        self.tally = tally

    def request(self, method: str, path: str, body: dict | None = None) -> Reply:
        data = b"" if body is None else json.dumps(body).encode()
        resend = 2 if path.endswith("/responses") else 0
        self.tally.started = min(self.tally.started, time.time())
        for attempt in range(resend + 1):
            try:
                # geventhttpclient reopens a keep-alive connection found closed before the request went out.
                response = self.http.request(method, path, body=data, headers={"Content-Type": "application/json"})
                reply = Reply(response.status_code, response.get("content-type", ""), response.read())
                self.tally.ended = time.time()
                return reply
            except (OSError, HTTPConnectionClosed, HTTPParseError) as exc:
                if attempt == resend:
                    raise ConnectionError(type(exc).__name__) from exc
                self.tally.retries += 1
        raise AssertionError("unreachable")

    def close(self) -> None:
        self.http.close()


@dataclass
class Tally:
    bots: bots.Tally = field(default_factory=bots.Tally)
    retries: int = 0  # answers sent again (same response_id) after a connection failed
    cpu_s: float = 0.0  # CPU time of this client process
    started: float = float("inf")  # wall clock (time.time) of the first request, and the end of the last
    ended: float = 0.0


def client_process(port: int, participants: int, concurrency: int, think: float, ramp: float, seed: int) -> Tally:
    """Runs `participants` participants, `concurrency` at a time, each starting within the ramp.

    Each participant is a greenlet (gevent) on its own connection: thousands of them cost one thread, so
    the load generator takes little of the CPU it shares with the server. They answer like `culturelab
    bots --profile honest` but do not download the images (the figures in docs/load.md are for the API).
    """
    tally = Tally()
    cpu_start = time.process_time()
    rng = random.Random(seed)
    queue = list(range(participants))

    def worker(index: int) -> None:
        local = random.Random(rng.random() + index)
        gevent.sleep(local.uniform(0, ramp))
        while queue:  # greenlets switch only while waiting, so this check and pop are atomic
            queue.pop()
            transport = GeventTransport(port, tally)
            participant = bots.Participant(
                transport, SLUG, rng=local, fetch_images=False,
                think=lambda: gevent.sleep(think * local.uniform(0.5, 1.5)),
            )
            try:
                tally.bots.add(participant.walk(local.choice(GROUPS)))
            finally:
                transport.close()

    gevent.joinall([gevent.spawn(worker, i) for i in range(concurrency)], raise_error=True)
    tally.cpu_s = time.process_time() - cpu_start
    return tally


def _client_entry(args: tuple) -> Tally:
    return client_process(*args)


def percentile_ms(values: list[float], q: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return round(values[0] * 1000, 1)
    return round(statistics.quantiles(values, n=1000, method="inclusive")[int(q * 10) - 1] * 1000, 1)


def stored_response_ids(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(select(text("response_id")).select_from(text("responses")))
            return {row[0] for row in rows}
    finally:
        engine.dispose()


# -- the command ------------------------------------------------------------------------------------------

@click.command()
@click.option("--participants", default=300, show_default=True, type=click.IntRange(1),
              help="Simulated participants in all.")
@click.option("--concurrency", type=click.IntRange(1), help="Participants at once [default: --participants].")
@click.option("--trials", default=40, show_default=True, type=click.IntRange(1),
              help="Trials per participant (two attention checks come on top).")
@click.option("--think-ms", default=500, show_default=True, type=click.IntRange(0),
              help="Mean pause before each step of a participant (uniform, 0.5x to 1.5x); it sets the offered "
                   "load: 300 participants at 500 ms offer about 550 answers/s when replies are quick.")
@click.option("--ramp-s", default=2.0, show_default=True, type=click.FloatRange(0),
              help="Participants start at random times within this many seconds.")
@click.option("--database", "backend", type=click.Choice(["postgres", "sqlite"]), default="postgres",
              show_default=True, help="A fresh database of this kind (ignored with --database-url).")
@click.option("--postgres-server", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres",
              show_default=True, help="Where --database postgres creates (and drops) its database.")
@click.option("--database-url", help="Use this (empty) database instead; it is migrated and kept.")
@click.option("--workers", default=default_workers, show_default="2 per CPU core", type=click.IntRange(1),
              help="gunicorn processes (culturelab serve's default).")
@click.option("--threads", default=4, show_default=True, type=click.IntRange(1), help="Threads per worker.")
@click.option("--worker-class", type=click.Choice(sorted(WORKER_CLASSES)), default="async", show_default=True,
              help="culturelab serve's --worker-class.")
@click.option("--client-processes", default=1, show_default=True, type=click.IntRange(1),
              help="Processes of the load generator.")
@click.option("--seed", default=0, show_default=True)
def main(participants: int, concurrency: int | None, trials: int, think_ms: int, ramp_s: float, backend: str,
         postgres_server: str, database_url: str | None, workers: int, threads: int, client_processes: int,
         seed: int, worker_class: str) -> None:
    """Run simulated participants through the participant API; print one JSON object."""
    concurrency = min(concurrency or participants, participants)
    client_processes = min(client_processes, concurrency)
    with ExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="culturelab-load-")))
        try:
            if database_url is None:
                if backend == "postgres":
                    database_url = stack.enter_context(fresh_postgres(postgres_server))
                else:
                    database_url = f"sqlite:///{folder / 'load.sqlite3'}"
            create_engine(database_url).dispose()
        except (OperationalError, ArgumentError) as exc:
            message = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
            raise InputError(f"cannot use the database: {message}") from None
        env = {**os.environ, "CULTURELAB_DATABASE_URL": database_url, "CULTURELAB_DATA_DIR": str(folder / "data"),
               "CULTURELAB_SECRET_KEY": "load-test",
               # Every simulated participant comes from 127.0.0.1: lift the per-address creation limit.
               "CULTURELAB_PARTICIPANT_CREATE_LIMIT": "1000000/minute"}
        culturelab(env, "db", "upgrade")
        culturelab(env, "study", "load", str(write_study(folder, trials)))
        port = free_port()
        server_pid = stack.enter_context(server(env, port, workers, threads, folder / "server.log",
                                                      worker_class))

        shares = [participants // client_processes + (i < participants % client_processes)
                  for i in range(client_processes)]
        slots = [concurrency // client_processes + (i < concurrency % client_processes)
                 for i in range(client_processes)]
        jobs = [(port, n, max(1, c), think_ms / 1000, ramp_s, seed * 1000 + i)
                for i, (n, c) in enumerate(zip(shares, slots, strict=True))]
        serving, backends = server_pids(server_pid), database_pids(database_url)
        cpu_before = cpu_seconds(serving), cpu_seconds(backends)
        with multiprocessing.get_context("spawn").Pool(client_processes) as workers_pool:
            tallies = workers_pool.map(_client_entry, jobs)
        # From the first request to the last reply (not counting the client processes' start-up).
        duration = max(t.ended for t in tallies) - min(t.started for t in tallies)
        # Backends that connected during the run count from 0 (they did nothing before it).
        cpu_server = cpu_seconds(serving) - cpu_before[0]
        cpu_database = cpu_seconds(database_pids(database_url)) - cpu_before[1]

        stored = stored_response_ids(database_url)

    total = bots.Tally()
    for tally in tallies:
        total.add(tally.bots)
    latencies, errors, acknowledged = total.latencies, total.errors, set(total.acknowledged)
    completed, retries = total.completed, sum(tally.retries for tally in tallies)
    every = [v for values in latencies.values() for v in values]
    cpu_client = sum(tally.cpu_s for tally in tallies)
    answers = latencies.get("response", [])
    result = {
        "participants": participants,
        "concurrency": concurrency,
        "completed": completed,
        "workers": workers,
        "threads": threads,
        "worker_class": worker_class,
        "database": make_url(database_url).get_backend_name(),
        "trials_per_participant": trials + 2,
        "think_ms": think_ms,
        "duration_s": round(duration, 2),
        "responses_acknowledged": len(acknowledged),
        "responses_stored": len(stored),
        "responses_per_s": round(len(stored & acknowledged) / duration, 1),
        "p50_ms": percentile_ms(answers, 50),
        "p99_ms": percentile_ms(answers, 99),
        "requests": len(every),
        "requests_per_s": round(len(every) / duration, 1),
        "all_p50_ms": percentile_ms(every, 50),
        "all_p99_ms": percentile_ms(every, 99),
        "p99_ms_by_kind": {kind: percentile_ms(values, 99) for kind, values in sorted(latencies.items())},
        "errors": sum(errors.values()),
        "error_kinds": dict(errors),
        "retries": retries,
        # Where the machine's CPU went, per request: on a shared machine this is the figure that holds.
        "cpu_ms_per_request": {name: round(1000 * seconds / max(1, len(every)), 2) for name, seconds in
                               (("server", cpu_server), ("database", cpu_database), ("client", cpu_client))},
        "load_average_1min": round(os.getloadavg()[0], 2),
        "lost": len(acknowledged - stored),
    }
    click.echo(json.dumps(result))


if __name__ == "__main__":
    main()
