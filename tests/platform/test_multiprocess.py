"""Several gunicorn worker processes on one database: quotas and answers hold across processes.

The server runs as a participant's browser would meet it (`culturelab serve --workers 3`), set up with
the real CLI; nothing that matters may live in a worker's memory.
"""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import create_engine, func, select

from culturelab.platform.bots import HttpTransport, Participant
from culturelab.platform.models import Response


def test_quota_and_answers_hold_across_worker_processes(live_server, database_url):
    server = live_server(workers=3, recruitment={"quotas": {"east_asian": 5}})
    bots = [Participant(HttpTransport(server), "motif-test") for _ in range(16)]
    for bot in bots:
        assert bot.create().status_code == 201
        assert bot.consent().status_code == 200

    with ThreadPoolExecutor(16) as pool:
        statuses = list(pool.map(lambda bot: bot.background("east_asian").status_code, bots))
    assert statuses.count(200) == 5 and statuses.count(409) == 11

    admitted = [bot for bot, s in zip(bots, statuses) if s == 200]

    def walk(bot: Participant) -> int:
        acknowledged = 0
        nxt = bot.next()
        while not nxt["done"]:
            response_id = str(uuid.uuid4())
            reply = bot.answer(nxt["trial"], response_id=response_id)
            assert reply.status_code == 201, reply.get_json()
            # The same answer again on a new connection, so most likely to another worker: stored once.
            again = Participant(HttpTransport(server), "motif-test")
            again.token = bot.token
            assert again.answer(nxt["trial"], response_id=response_id).status_code == 200
            acknowledged += 1
            nxt = reply.get_json()["next"]
        assert nxt["completion_code"]
        return acknowledged

    with ThreadPoolExecutor(5) as pool:
        acknowledged = sum(pool.map(walk, admitted))
    engine = create_engine(database_url)
    with engine.connect() as connection:
        assert connection.scalar(select(func.count()).select_from(Response)) == acknowledged == 5 * 14
    engine.dispose()
