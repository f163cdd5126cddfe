"""`culturelab serve` (its default asyncio worker) against idle and slow clients: participants go on being
served, and a request reaches the app only once it has fully arrived."""

from __future__ import annotations

import json
import socket
import time

from culturelab.platform.bots import HttpTransport, Participant


def _port(base: str) -> int:
    return int(base.rsplit(":", 1)[1])


def test_idle_and_slowloris_connections_do_not_starve_participants(live_server):
    base = live_server(workers=1)  # one worker of 4 threads: 60 held connections would take every thread
    held = []
    for i in range(60):
        s = socket.create_connection(("127.0.0.1", _port(base)))
        if i % 2:
            s.send(b"POST /api/v1/studies/motif-test/participants HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        held.append(s)
    try:
        bot = Participant(HttpTransport(base, timeout=10), "motif-test")
        start = time.perf_counter()
        tally = bot.walk("east_asian")
        assert tally.completed == 1, tally.errors
        assert time.perf_counter() - start < 10
        assert max(max(v) for v in tally.latencies.values()) < 2
    finally:
        for s in held:
            s.close()


def _raw(base: str, request: bytes, pause: float = 0) -> tuple[int, dict]:
    with socket.create_connection(("127.0.0.1", _port(base)), timeout=30) as s:
        head, _, body = request.partition(b"\r\n\r\n")
        s.sendall(head + b"\r\n\r\n" + body[:1])
        time.sleep(pause)
        if pause < 1.5:
            s.sendall(body[1:])
        reply = b""
        while chunk := s.recv(65536):
            reply += chunk
            if b"\r\n\r\n" in reply and reply.rstrip().endswith(b"}"):
                break
    status = int(reply.split(b" ", 2)[1])
    return status, json.loads(reply.split(b"\r\n\r\n", 1)[1])


def test_a_body_that_never_arrives_is_408_and_a_huge_one_413(live_server, monkeypatch):
    monkeypatch.setenv("CULTURELAB_REQUEST_BODY_TIMEOUT", "1")
    base = live_server(workers=1)
    body = b'{"language": "en"}'
    request = (b"POST /api/v1/studies/motif-test/participants HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
               b"\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
    assert _raw(base, request, pause=0.2)[0] == 201
    status, error = _raw(base, request, pause=2)
    assert status == 408 and error["error"]["code"] == "timeout"
    huge = b'{"language": "' + b"x" * 70_000 + b'"}'
    status, error = _raw(base, b"POST /api/v1/studies/motif-test/participants HTTP/1.1\r\nHost: x\r\n"
                         b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(huge), huge))
    assert status == 413 and error["error"]["code"] == "too_large"
