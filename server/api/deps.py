"""What route handlers take: a session, the settings, and the authenticated user (role-checked)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from typing import Annotated

import jwt
from fastapi import Depends, Header, Path, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import bindparam
from sqlmodel import Session, col, select

from common.contract import (
    APP_VERSION_HEADER,
    CONTRACT_VERSION,
    CONTRACT_VERSION_HEADER,
    SUPPORTED_CONTRACT_VERSIONS,
)
from common.i18n import N_, accepted_language
from server.core.config import Settings
from server.core.errors import Forbidden, Problem, Unauthorized
from server.core.security import decode_access_token
from server.models import Device, User
from server.schemas.requests import MAX_ROW_ID

# The dependencies that do no I/O are `async def`: FastAPI runs those on the event loop, and
# each plain `def` one in a trip to its thread pool and back (~65 µs of the server's CPU each:
# a push solved seven of them, a tenth of its fixed cost).


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_session(request: Request) -> AsyncIterator[Session]:
    """The request is the unit of work: what it wrote is committed when its handler returns,
    before the answer is sent, and rolled back if it raises. Services never commit.

    Made on the event loop (a Session touches the database only when first used); ended in
    the thread pool only when it holds a transaction, whose commit or rollback waits on the
    database (a push commits its own)."""
    session = Session(request.app.state.engine, expire_on_commit=False)
    try:
        yield session
        if session.in_transaction():
            await run_in_threadpool(session.commit)
    finally:
        if session.in_transaction():
            await run_in_threadpool(session.close)
        else:
            session.close()


SettingsDep = Annotated[Settings, Depends(get_settings)]


def language_of(accept_language: str | None) -> str:
    """The language the caller reads (its Accept-Language); a caller that names none gets the
    English every stored sentence is kept in (a script, an export, an older client)."""
    return accepted_language(accept_language) or "en"


async def caller_language(
    accept_language: Annotated[
        str | None,
        Header(description="The language of the sentences in the answer: zh-CN or en"),
    ] = None,
) -> str:
    return language_of(accept_language)


LanguageDep = Annotated[str, Depends(caller_language)]
# A row id in a path: a number no row can have is a 422 naming the parameter.
RowId = Annotated[int, Path(ge=1, le=MAX_ROW_ID)]
# scope="function": the commit happens before the response goes out, so a client is never told
# "accepted" for something that did not commit.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]

_bearer = HTTPBearer(auto_error=False, description="The access token from /auth/login")


@dataclass(frozen=True)
class Caller:
    """The authenticated user and the device the token was issued to."""

    user: User
    device_id: str

    @property
    def id(self) -> int:
        assert self.user.id is not None
        return self.user.id

    @property
    def role(self) -> str:
        return self.user.role


# The user and what the token's device says of it, in one statement made once: every request
# asks, and a statement made anew is made, and its cache key worked out, at every request.
_CALLER_STATEMENT = (
    select(User, Device.id, Device.revoked_at, Device.token_generation)
    .outerjoin(Device, col(Device.id) == bindparam("device_id"))
    .where(col(User.id) == bindparam("user_id"))
)


def get_caller(
    session: SessionDep,
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Caller:
    if credentials is None:
        raise Unauthorized(
            N_("Not logged in: send 'Authorization: Bearer <access_token>'."),
            code="not_authenticated",
        )
    try:
        claims = decode_access_token(settings, credentials.credentials)
    except jwt.ExpiredSignatureError:
        raise Unauthorized(N_("The login has expired: refresh it."), code="token_expired") from None
    except jwt.InvalidTokenError:
        raise Unauthorized(N_("The login is not valid."), code="invalid_token") from None
    sqlite = session.get_bind().dialect.name == "sqlite"
    if sqlite:
        # Read only: a deferred transaction (make_engine), without the write lock, ended at
        # once below. A request that writes waits for the lock once, at its first write, not
        # also to read who is calling (every request on SQLite queued for it to do that).
        session.connection(execution_options={"sqlite_deferred": True})
    found = session.exec(
        _CALLER_STATEMENT, params={"user_id": claims.user_id, "device_id": claims.device_id}
    ).first()
    if sqlite:
        session.commit()
    if found is None:
        raise Unauthorized(N_("This user has been revoked."), code="user_revoked")
    user, device_id, device_revoked_at, generation = found
    if not user.active or user.revoked_at is not None:
        raise Unauthorized(N_("This user has been revoked."), code="user_revoked")
    if device_id is None or device_revoked_at is not None:
        raise Unauthorized(N_("This handheld has been revoked."), code="device_revoked")
    if claims.generation != generation:
        raise Unauthorized(
            N_("This session has ended (logged out, or its login was copied): log in again."),
            code="session_ended",
        )
    return Caller(user=user, device_id=claims.device_id)


CallerDep = Annotated[Caller, Depends(get_caller)]


def require_role(*roles: str) -> Callable[[Caller], Coroutine[None, None, Caller]]:
    """A dependency that lets through only callers with one of `roles`."""

    async def check(caller: CallerDep) -> Caller:
        if caller.role not in roles:
            raise Forbidden(
                f"role '{caller.role}' may not do this (needs {' or '.join(roles)})",
                code="wrong_role",
            )
        return caller

    return check


AdminDep = Annotated[Caller, Depends(require_role("admin"))]


class UpgradeRequired(Problem):
    status_code = 426


def _version_tuple(version: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in version.split("."))
    except ValueError:
        return (0,)


async def check_client_version(
    settings: SettingsDep,
    response: Response,
    contract: Annotated[str | None, Header(alias=CONTRACT_VERSION_HEADER)] = None,
    app_version: Annotated[str | None, Header(alias=APP_VERSION_HEADER)] = None,
) -> None:
    """Refuse, with a sentence the app can show, a client speaking a contract we cannot serve;
    say in the answer which contract it is in (the client's: no header is contract 1)."""
    if contract is not None and (
        not contract.isdecimal() or int(contract) not in SUPPORTED_CONTRACT_VERSIONS
    ):
        raise UpgradeRequired(
            N_(
                "This server speaks sync contract {server}, the app speaks {app}: update the "
                "app; nothing on the handheld has been lost."
            ),
            params={"server": CONTRACT_VERSION, "app": repr(contract)},
            code="contract_unsupported",
            extra={"server_contract": CONTRACT_VERSION},
        )
    if app_version is not None and _version_tuple(app_version) < _version_tuple(
        settings.min_app_version
    ):
        raise UpgradeRequired(
            N_(
                "App version {version} is too old (at least {minimum}): update the app; "
                "nothing on the handheld has been lost."
            ),
            params={"version": app_version, "minimum": settings.min_app_version},
            code="app_too_old",
            extra={"min_app_version": settings.min_app_version},
        )
    response.headers[CONTRACT_VERSION_HEADER] = str(_contract_of(contract))


def _contract_of(header: str | None) -> int:
    return int(header) if header is not None and header.isdecimal() else 1


async def spoken_contract(
    contract: Annotated[str | None, Header(alias=CONTRACT_VERSION_HEADER)] = None,
) -> int:
    """The contract the client speaks (check_client_version refused any other): its answer's."""
    return _contract_of(contract)


ContractDep = Annotated[int, Depends(spoken_contract)]
