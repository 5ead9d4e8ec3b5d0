"""Back-pressure: how many API requests are let in at once, and what the others are told.

A request is admitted before its body is read and before it takes a database connection or a
worker thread; one that finds no place is answered 503 with Retry-After at once. Nothing
queues: a queue of requests waiting for connections, each holding a worker thread, is how the
server once stopped answering altogether (the connections' holders waited for the threads).
"""

from __future__ import annotations

import logging

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

logger = logging.getLogger("gridwalk")

RETRY_AFTER = "Retry-After"


class Gate:
    """A number of places; a request takes one or is turned away, never made to wait.

    Used from the event loop only, so taking a place needs no lock."""

    def __init__(self, places: int):
        self.places = places
        self.taken = 0

    def enter(self) -> bool:
        if self.taken >= self.places:
            return False
        self.taken += 1
        return True

    def leave(self) -> None:
        self.taken -= 1


def _unavailable(detail: str, *, code: str, retry_after_s: int) -> JSONResponse:
    """A 503 the handheld understands: a sentence, a code, and how long to wait."""
    return JSONResponse(
        status_code=503,
        content={"detail": detail, "code": code},
        headers={RETRY_AFTER: str(retry_after_s)},
    )


def busy(retry_after_s: int) -> JSONResponse:
    """Too many requests in flight (or SQLite's write lock, or the pool, taken too long)."""
    return _unavailable(
        "the server is busy: nothing is lost, try again in a moment",
        code="busy",
        retry_after_s=retry_after_s,
    )


def database_unavailable(retry_after_s: int) -> JSONResponse:
    """The database is down, restarting or unreachable."""
    return _unavailable(
        "the database cannot be reached just now: nothing is lost, try again later",
        code="database_unavailable",
        retry_after_s=retry_after_s,
    )


class Admission:
    """ASGI middleware: pushes and the other API requests each have their own places, so a
    burst of pushes cannot starve logins and pulls (or the other way round)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        api_prefix: str,
        push_path: str,
        pushes: int,
        requests: int,
        retry_after_s: int,
    ):
        self.app = app
        self.api_prefix = api_prefix.rstrip("/") + "/"
        self.push_path = push_path
        self.pushes = Gate(pushes)
        self.requests = Gate(requests)
        self.retry_after_s = retry_after_s

    def _gate(self, scope: Scope) -> Gate | None:
        path: str = scope["path"]
        if path == self.push_path:
            return self.pushes
        # Pages, /docs, /healthz and static files hold no database connection.
        return self.requests if path.startswith(self.api_prefix) else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        gate = self._gate(scope) if scope["type"] == "http" else None
        if gate is None:
            await self.app(scope, receive, send)
            return
        if not gate.enter():
            logger.info(
                "busy: %s %s turned away (%d in flight)", scope["method"], scope["path"], gate.taken
            )
            answer = busy(self.retry_after_s)
            await answer(scope, receive, send)
            return
        try:
            await self.app(scope, receive, send)
        finally:
            gate.leave()
