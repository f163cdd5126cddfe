"""The app as `culturelab serve` runs it: Flask (WSGI) inside gunicorn's asyncio worker.

With gunicorn's threaded worker, every open connection that has not yet sent a whole request holds one of
the few request threads, so 200 idle or deliberately slow clients (slowloris) stall every participant.
Here connections wait in the event loop, where they cost a few kilobytes, and a request is handed to a
thread of the app's pool (a2wsgi) only once its headers and its whole body have arrived: a body that
trickles in for longer than the app's REQUEST_BODY_TIMEOUT seconds is answered 408, one larger than its
MAX_CONTENT_LENGTH 413, without ever reaching a thread.
"""

from __future__ import annotations

import asyncio
import contextvars
import json

from a2wsgi import WSGIMiddleware
from flask import Flask


async def _refuse(send, status: int, code: str, message: str) -> None:
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
               (b"connection", b"close")]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _named(send):
    """gunicorn adds ``Server: gunicorn/asgi`` unless the app names a server: name none worth attacking."""

    async def named(message):
        if message["type"] == "http.response.start" and not any(k.lower() == b"server" for k, _ in
                                                                message.get("headers", [])):
            message = {**message, "headers": [*message.get("headers", []), (b"server", b"CultureLab")]}
        await send(message)

    return named


def asgi_app(app: Flask, threads: int):
    """An ASGI application running ``app`` on ``threads`` threads, each request buffered whole first."""
    wsgi = WSGIMiddleware(app, workers=threads)
    limit = app.config.get("MAX_CONTENT_LENGTH") or 1 << 20
    body_timeout = float(app.config["REQUEST_BODY_TIMEOUT"])

    async def buffered(scope, receive, send):
        if scope["type"] != "http":
            return await wsgi(scope, receive, send)
        send = _named(send)
        chunks, size, more = [], 0, True
        try:
            async with asyncio.timeout(body_timeout):
                while more:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        return None
                    chunk = message.get("body", b"")
                    size += len(chunk)
                    if size > limit:
                        return await _refuse(send, 413, "too_large", f"the request body exceeds {limit} bytes")
                    chunks.append(chunk)
                    more = message.get("more_body", False)
        except TimeoutError:
            return await _refuse(send, 408, "timeout", "the request body did not arrive in time")
        body, delivered = b"".join(chunks), False

        async def replay():
            nonlocal delivered
            if delivered:
                return await receive()  # only a disconnect can follow
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}

        # A fresh context per request: the worker inherited the CLI's Flask app context (contextvars survive the
        # fork), and Flask reuses an active app context, so requests would otherwise share one `g` and with it
        # one database session. a2wsgi copies this empty context into the thread that runs the request.
        return await asyncio.create_task(wsgi(scope, replay, send), context=contextvars.Context())

    return buffered
