"""The sync contract: the handheld pulls its work and pushes its outbox."""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from sqlmodel import Session

from common import compact
from common.contract import COMPACT_CONTRACT, CONTRACT_VERSION_HEADER
from server.api.deps import (
    Caller,
    ContractDep,
    LanguageDep,
    SessionDep,
    SettingsDep,
    check_client_version,
    require_role,
)
from server.core.config import Settings
from server.core.db import sqlite_write_turn
from server.core.errors import Problem, TooLarge
from server.schemas.answers import errors
from server.schemas.requests import Text, json_free_of_controls
from server.schemas.wire import PullResponse, PushRequest, PushResponse
from server.sync import pull as pulling
from server.sync import push as pushing
from server.validation import queue as validation_queue

router = APIRouter(
    prefix="/sync",
    tags=["sync"],
    dependencies=[Depends(check_client_version)],
    responses=errors(400, 401, 403, 413, 415, 422, 426),
)

FieldWorker = Annotated[Caller, Depends(require_role("reader", "crew", "supervisor"))]


class BadBody(Problem):
    status_code = 400


class UnsupportedEncoding(Problem):
    status_code = 415


@router.get("/pull")
def pull(
    caller: FieldWorker,
    session: SessionDep,
    settings: SettingsDep,
    cursor: Annotated[Text | None, Query(max_length=512, description="from the last pull")] = None,
) -> PullResponse:
    """Everything for this device's user that changed since `cursor` (no cursor: everything)."""
    return pulling.pull(session, settings, user=caller.user, cursor=cursor)


async def _read_body(request: Request, settings: Settings) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > settings.max_push_bytes:
        raise TooLarge(
            f"push body is {declared} bytes; at most {settings.max_push_bytes}", code="too_large"
        )
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > settings.max_push_bytes:
            raise TooLarge(f"push body is over {settings.max_push_bytes} bytes", code="too_large")
    return bytes(body)


def _inflated(body: bytes, encoding: str, settings: Settings) -> bytes:
    if encoding == "identity":
        return body
    if encoding != "gzip":
        raise UnsupportedEncoding(
            f"Content-Encoding {encoding!r} is not supported (use gzip)",
            code="unsupported_encoding",
        )
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        data = inflater.decompress(body, settings.max_push_inflated_bytes + 1)
    except zlib.error as exc:
        raise BadBody(f"body is not valid gzip: {exc}", code="bad_gzip") from None
    if len(data) > settings.max_push_inflated_bytes:
        raise TooLarge(
            f"push body inflates to over {settings.max_push_inflated_bytes} bytes", code="too_large"
        )
    if not inflater.eof:
        raise BadBody("gzip body is truncated", code="bad_gzip")
    return data


@dataclass(frozen=True)
class PushBody:
    """A push body parsed; `scanned`: its text holds no control character anywhere
    (json_free_of_controls), so its items need not be walked for one."""

    payload: Any
    scanned: bool


def _parsed(raw: bytes) -> Any:
    """The body's JSON. orjson parses a push in a third of the time; what it refuses (numbers
    beyond 64 bits, lone surrogates, a BOM, UTF-16) goes to the standard parser, which either
    takes it as before (its items are then refused one by one) or says what is wrong."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return json.loads(raw)


def _decoded(body: bytes, encoding: str, settings: Settings) -> PushBody:
    raw = _inflated(body, encoding, settings)
    try:
        payload = _parsed(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadBody(f"body is not JSON: {exc}", code="not_json") from None
    except RecursionError:
        raise BadBody("body is not a push: JSON nested too deep", code="not_json") from None
    return PushBody(payload, json_free_of_controls(raw))


async def read_push(request: Request, settings: SettingsDep) -> PushBody:
    """The push body, read and parsed before the caller's session takes a connection: a body
    that trickles in over GPRS must not keep a connection idle in a transaction meanwhile.
    Inflating and parsing a day's outbox takes tens of milliseconds of CPU: done in a worker
    thread, so that the event loop goes on serving other requests meanwhile."""
    body = await _read_body(request, settings)
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    return await run_in_threadpool(_decoded, body, encoding, settings)


@router.post(
    "/push",
    openapi_extra={
        "requestBody": {
            "required": True,
            "description": "The device's outbox; may be sent with `Content-Encoding: gzip`.",
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/PushRequest"}}
            },
        }
    },
    response_model=PushResponse,
    description="Contract 2 (`X-Gridwalk-Contract: 2`) sends readings and the track as columns "
    "and is answered compact (common.compact); this schema is contract 1's.",
)
async def push(
    request: Request,
    # First, so that it is solved before the caller (whose look-up opens the session).
    body: Annotated[PushBody, Depends(read_push)],
    caller: FieldWorker,
    session: SessionDep,
    settings: SettingsDep,
    language: LanguageDep,
    contract: ContractDep,
) -> PushResponse | JSONResponse:
    """Store the device's outbox: one result per reading and job event, track in aggregate."""
    pusher = pushing.Pusher(
        user=caller.user, device_id=caller.device_id, language=language, contract=contract
    )
    answer = await run_in_threadpool(_push_and_commit, session, settings, pusher, body)
    # Committed: the work the push queued is visible to the validation workers now.
    if settings.validation_in_request:
        await run_in_threadpool(validation_queue.drain, request.app.state.engine, settings)
    elif request.app.state.validation_workers is not None:
        request.app.state.validation_workers.wake()
    if contract < COMPACT_CONTRACT:
        return answer
    return JSONResponse(
        compact.encode_answer(answer.model_dump(mode="json")),
        headers={CONTRACT_VERSION_HEADER: str(contract)},
    )


def _push_and_commit(
    session: Session, settings: Settings, pusher: pushing.Pusher, body: PushBody
) -> PushResponse:
    # On SQLite the caller's look-up ended its read already (get_caller): the push's own
    # transaction begins with its first statement and holds the write lock for the writes
    # alone, not while the outbox is checked (CPU work only). PostgreSQL's look-up took no
    # lock, and the push goes on in its transaction: a COMMIT, a BEGIN and the pool's check of
    # the connection fewer.
    outbox = pushing.unpack(body.payload, pusher.contract, scanned=body.scanned)
    with sqlite_write_turn(session):
        answer = pushing.store(session, settings, pusher=pusher, outbox=outbox)
        # The push's unit of work ends here, not when the handler returns (as it would for
        # other requests), so that its queued validation can be started (or, in tests, run)
        # after it.
        session.commit()
    return answer


# The push body is read by hand (gzip, per-item answers); these schemas document it at /docs.
OPENAPI_SCHEMAS = (PushRequest,)
