"""The FastAPI application: routes under /api/v1, domain errors turned into clear 4xx answers."""

from __future__ import annotations

import asyncio
import gc
import logging
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from typing import Any

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.gzip import GZipMiddleware
from fastapi.responses import JSONResponse, Response
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect

from common import clock
from common.contract import API_PREFIX, CONTRACT_VERSION
from server.api.deps import language_of
from server.api.routes import admin, audit, auth, billing, jobs, sync
from server.core.admission import RETRY_AFTER, Admission, busy, database_unavailable
from server.core.config import Settings
from server.core.db import engine_for, out_of_reach
from server.core.errors import Problem
from server.schemas.answers import errors
from server.validation import queue as validation_queue
from server.validation import runner as validation
from server.web import pages

logger = logging.getLogger("gridwalk")

_FRAMEWORK_CODES = {400: "unreadable_body", 404: "not_found", 405: "method_not_allowed"}


def create_app(settings: Settings | None = None, engine: Engine | None = None) -> FastAPI:
    """Build the app for `settings` (default: from the environment)."""
    settings = settings or Settings()
    owns_engine = engine is None
    engine = engine or engine_for(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        switch_interval = sys.getswitchinterval()
        sys.setswitchinterval(settings.thread_switch_interval_s)
        closer = None
        if settings.close_due_every_minutes > 0:
            closer = asyncio.create_task(_close_due_periodically(settings, engine))
        workers = None
        if settings.validation_workers > 0 and not settings.validation_in_request:
            # They drain at once what an earlier run left queued, then after each push.
            workers = validation_queue.Workers(engine, settings)
            workers.start()
        app.state.validation_workers = workers
        # What the server holds for its life (modules, tables, schemas, routes) is set aside
        # from the cycle collector, whose passes then walk only what requests make: a push
        # makes hundreds of objects, and walking the rest as well took about a tenth of the
        # server's time in the readings bench (bench/README.md). Given back at the end, for a
        # process that goes on (tests).
        gc.freeze()
        yield
        gc.unfreeze()
        if workers is not None:
            await run_in_threadpool(workers.stop)
        if closer is not None:
            closer.cancel()
            with suppress(asyncio.CancelledError):
                await closer
        if owns_engine:  # an engine handed in belongs to the caller
            engine.dispose()
        sys.setswitchinterval(switch_interval)

    app = FastAPI(
        title="Gridwalk",
        version=f"contract {CONTRACT_VERSION}",
        description="Field work for electricity utilities: meter reading, repair jobs, audit.",
        lifespan=lifespan,
        # /docs is served by pages.mount from files installed here, never from a CDN; ReDoc
        # would need one, so it is left out.
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.validation_workers = None  # until the lifespan starts them

    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> JSONResponse:
        language = language_of(request.headers.get("Accept-Language"))
        body: dict[str, object] = {"detail": exc.said_in(language), "code": exc.code, **exc.extra}
        headers = {"WWW-Authenticate": "Bearer"} if exc.status_code == 401 else {}
        return JSONResponse(
            status_code=exc.status_code, content=body, headers=headers | exc.headers
        )

    @app.exception_handler(HTTPException)
    async def _http(_request: Request, exc: HTTPException) -> JSONResponse:
        # The framework's own refusals (a body it cannot decode, an unknown path, a method the
        # path does not take) in the one error shape /openapi.json documents, with a code.
        code = _FRAMEWORK_CODES.get(exc.status_code, f"http_{exc.status_code}")
        return JSONResponse(
            status_code=exc.status_code,
            content={"detail": str(exc.detail), "code": code},
            headers=exc.headers,
        )

    @app.exception_handler(ClientDisconnect)
    async def _hung_up(request: Request, _exc: ClientDisconnect) -> Response:
        # A handheld losing its link mid-push is an ordinary day on GPRS: its outbox still
        # holds the batch and sends it again. One line, no traceback; nobody reads the answer.
        where = request.client.host if request.client else "?"
        logger.info("client %s hung up during %s %s", where, request.method, request.url.path)
        return Response(status_code=499)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        # Name each bad field by its path, so a client (or a person at /docs) sees what to fix.
        errors = [
            {"field": ".".join(str(p) for p in err["loc"]), "error": err["msg"]}
            for err in exc.errors()
        ]
        summary = "; ".join(f"{e['field']}: {e['error']}" for e in errors[:5])
        return JSONResponse(
            status_code=422,
            content={"detail": f"invalid request: {summary}", "code": "invalid", "errors": errors},
        )

    @app.exception_handler(PoolTimeout)
    async def _pool_exhausted(request: Request, _exc: PoolTimeout) -> JSONResponse:
        # Admission keeps requests within the pool, so this is rare (the database is slow to
        # hand out connections); the client is told to come back, as for any busy answer.
        logger.warning("busy: no database connection for %s %s", request.method, request.url.path)
        return busy(settings.busy_retry_after_s)

    async def _database_out_of_reach(request: Request, exc: Exception) -> JSONResponse:
        why = out_of_reach(exc) if isinstance(exc, DBAPIError) else None
        if why is None:
            raise exc  # a bug in a statement: a 500, with its traceback in the log
        # One line per request, no traceback: a restart of PostgreSQL is an ordinary event.
        reason = (str(getattr(exc, "orig", exc)).strip().splitlines() or ["?"])[0]
        where = f"{request.method} {request.url.path}"
        logger.warning("database %s during %s: %s", why, where, reason)
        if why == "busy":
            return busy(settings.busy_retry_after_s)
        return database_unavailable(settings.db_down_retry_after_s)

    app.add_exception_handler(DBAPIError, _database_out_of_reach)

    # Every API route can be answered 503 (busy, or the database out of reach).
    come_back = {
        status: {**answer, "headers": {RETRY_AFTER: _RETRY_AFTER_DOC}}
        for status, answer in errors(503).items()
    }
    for module in (auth, admin, sync, audit, jobs, billing):
        app.include_router(module.router, prefix=API_PREFIX, responses=come_back)
    app.add_middleware(
        Admission,
        api_prefix=API_PREFIX,
        push_path=f"{API_PREFIX}/sync/push",
        pushes=settings.max_inflight_pushes,
        requests=settings.max_inflight_requests,
        retry_after_s=settings.busy_retry_after_s,
    )
    # Outermost: every answer, busy ones too, goes out gzipped to a client that accepts it (the
    # handheld on GPRS, a desk's browser). Level 6: nearly level 9's size at a fraction of its CPU.
    app.add_middleware(GZipMiddleware, minimum_size=settings.gzip_min_bytes, compresslevel=6)

    pages.mount(app)
    _document_hand_read_bodies(app)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


_RETRY_AFTER_DOC = {
    "description": "Seconds to wait before trying again",
    "schema": {"type": "integer", "minimum": 0},
}


async def _close_due_periodically(settings: Settings, engine: Engine) -> None:
    """Close assignments whose window has ended, now and every few minutes."""
    while True:
        try:
            await run_in_threadpool(_close_due, settings, engine)
        except Exception:  # a bad night must not stop the next run; it is logged
            logger.exception("closing due assignments failed")
        await asyncio.sleep(settings.close_due_every_minutes * 60)


def _close_due(settings: Settings, engine: Engine) -> None:
    closed = validation.close_due_assignments(engine, settings=settings, now=clock.now())
    if closed:
        logger.info("closed assignments whose window ended: %s", closed)


def _document_hand_read_bodies(app: FastAPI) -> None:
    """Add to /openapi.json the schemas of bodies the routes read by hand (the sync push)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            for model in sync.OPENAPI_SCHEMAS:
                defs = model.model_json_schema(ref_template="#/components/schemas/{model}")
                components.update(defs.pop("$defs", {}))
                components[model.__name__] = defs
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
