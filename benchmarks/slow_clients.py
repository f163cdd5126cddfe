"""Slow-client benchmark: do idle and slowloris connections starve the participants of `culturelab serve`?

Starts `culturelab serve` as documented for production (its default workers and threads, or the ones
given) on a fresh SQLite database (or a throw-away PostgreSQL schema), then runs participant bots (the
project's own, culturelab.platform.bots, over keep-alive connections) twice: alone, and while `--idle`
connections that send nothing and `--slowloris` connections that trickle one header line every few seconds
stay open. Prints ONE JSON object with the participants' request latencies (p50, p99, max) in each phase,
their errors, and how many of the slow connections the server still held at the end.

    python3 benchmarks/slow_clients.py [--idle 200] [--slowloris 50] [--participants 40] [--concurrency 8]
                                       [--think 0.2] [--database sqlite | postgresql+psycopg://...]
                                       [--serve-option=--workers=4 ...]

The target (issue 12): participants' p99 under 250 ms with 200 idle or slow connections open.
"""

from __future__ import annotations

import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import click
from sqlalchemy import create_engine, text

sys.path.insert(0, str(Path(__file__).parents[1] / "tests" / "platform"))
from culturelab.platform.bots import HttpTransport, Participant, Tally  # noqa: E402

from studykit import write_study  # noqa: E402  (the test kit builds the stimulus set and study file)

SLUG = "motif-test"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def culturelab(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "culturelab.platform.cli", *args], env=env, check=True,
                          capture_output=True, text=True)


def wait_until_up(port: int, server: subprocess.Popen, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError("the server exited")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("the server did not start")


class SlowConnections:
    """Connections that hold the server's attention without finishing a request."""

    def __init__(self, port: int, idle: int, slowloris: int, trickle_s: float = 5.0):
        self.port, self.trickle_s = port, trickle_s
        self.idle = [self._open() for _ in range(idle)]
        self.slow = [self._open() for _ in range(slowloris)]
        for conn in self.slow:
            conn.sendall(f"POST /api/v1/studies/{SLUG}/participants HTTP/1.1\r\nHost: localhost\r\n".encode())
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._trickle, daemon=True)
        self._thread.start()

    def _open(self) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=5)

    def _trickle(self) -> None:
        while not self._stop.wait(self.trickle_s):
            for conn in self.slow:
                try:
                    conn.sendall(f"X-Slow-{random.randrange(10**6)}: 1\r\n".encode())
                except OSError:
                    pass  # the server closed it: counted by still_open

    def still_open(self) -> int:
        """Slow connections the server has not closed (a closed one reads as EOF or fails)."""
        held = 0
        for conn in self.idle + self.slow:
            conn.setblocking(False)
            try:
                held += conn.recv(1, socket.MSG_PEEK) != b""
            except BlockingIOError:
                held += 1
            except OSError:
                pass
        return held

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        for conn in self.idle + self.slow:
            conn.close()


def run_participants(base_url: str, n: int, concurrency: int, think: float) -> dict:
    def one(index: int):
        transport = HttpTransport(base_url, timeout=20)
        rng = random.Random(index)
        bot = Participant(transport, SLUG, rng=rng, fetch_images=False,
                          think=lambda: time.sleep(think * rng.uniform(0.5, 1.5)))
        try:
            return bot.walk(rng.choice(["east_asian", "west_african"]))
        finally:
            transport.close()

    began = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        tallies = list(pool.map(one, range(n)))
    total = Tally()
    for tally in tallies:
        total.add(tally)
    latencies = sorted(s for values in total.latencies.values() for s in values)
    return {
        "participants": n,
        "requests": len(latencies),
        "seconds": round(time.perf_counter() - began, 1),
        "p50_ms": round(1000 * statistics.median(latencies), 1),
        "p99_ms": round(1000 * latencies[int(0.99 * (len(latencies) - 1))], 1),
        "max_ms": round(1000 * latencies[-1], 1),
        "completed": total.completed,
        "errors": dict(total.errors),
    }


@click.command()
@click.option("--idle", type=int, default=200, show_default=True, help="Connections that send nothing.")
@click.option("--slowloris", type=int, default=0, show_default=True, help="Connections trickling headers.")
@click.option("--participants", type=int, default=40, show_default=True)
@click.option("--concurrency", type=int, default=8, show_default=True, help="Participants at once.")
@click.option("--think", type=float, default=0.2, show_default=True, help="Mean seconds between requests.")
@click.option("--database", default="sqlite", show_default=True, help="sqlite, or a PostgreSQL URL.")
@click.option("--serve-option", "serve_options", multiple=True, help="Passed on to culturelab serve.")
def main(idle, slowloris, participants, concurrency, think, database, serve_options) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        schema = None
        url = f"sqlite:///{folder / 'bench.sqlite3'}"
        if database != "sqlite":
            schema = f"bench_{uuid.uuid4().hex[:10]}"
            with create_engine(database).begin() as connection:
                connection.execute(text(f'CREATE SCHEMA "{schema}"'))
            url = f"{database}{'&' if '?' in database else '?'}options=-csearch_path%3D{schema}"
        env = {**os.environ, "CULTURELAB_DATABASE_URL": url, "CULTURELAB_DATA_DIR": str(folder / "data"),
               "CULTURELAB_SECRET_KEY": "bench", "CULTURELAB_INSTANCE_PATH": str(folder / "instance")}
        study = write_study(folder, recruitment={"completion_code": "BENCH"})  # no quotas: nobody is turned away
        culturelab("db", "upgrade", env=env)
        culturelab("study", "load", str(study), env=env)
        port = free_port()
        log = (folder / "serve.log").open("w")  # a file, not a pipe: nobody reads it while the server runs
        server = subprocess.Popen(
            [sys.executable, "-m", "culturelab.platform.cli", "serve", "--port", str(port), *serve_options],
            env=env, stdout=subprocess.DEVNULL, stderr=log, text=True,
        )
        try:
            wait_until_up(port, server)
            base = f"http://127.0.0.1:{port}"
            alone = run_participants(base, participants, concurrency, think)
            slow = SlowConnections(port, idle, slowloris)
            time.sleep(1)
            crowded = run_participants(base, participants, concurrency, think)
            held = slow.still_open()
            slow.close()
        finally:
            server.terminate()
            server.wait(timeout=30)
            log.close()
            if os.environ.get("SLOW_CLIENTS_LOG"):
                print((folder / "serve.log").read_text()[-4000:], file=sys.stderr)
            if schema:
                with create_engine(database).begin() as connection:
                    connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    print(json.dumps({
        "benchmark": "slow_clients", "database": "sqlite" if database == "sqlite" else "postgresql",
        "serve_options": list(serve_options), "idle": idle, "slowloris": slowloris, "cpus": os.cpu_count(),
        "alone": alone, "with_slow_connections": crowded, "slow_connections_still_open": held,
        "target_p99_ms": 250,
    }))


if __name__ == "__main__":
    main()
