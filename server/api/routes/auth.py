"""Log in and refresh tokens."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field
from sqlmodel import Session

from server.api.deps import CallerDep, SessionDep, SettingsDep, check_client_version
from server.catalog import accounts
from server.core.errors import Unauthorized
from server.models import Grid
from server.schemas.answers import errors
from server.schemas.requests import RequestModel

router = APIRouter(
    prefix="/auth",
    tags=["auth"],
    dependencies=[Depends(check_client_version)],
    responses=errors(400, 401, 403, 422, 426),
)


class LoginIn(RequestModel):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=256)
    device_id: str = Field(min_length=8, max_length=64, pattern=r"^[A-Za-z0-9._:-]+$")
    app_version: str | None = Field(default=None, max_length=32)


class RefreshIn(RequestModel):
    refresh_token: str = Field(min_length=1, max_length=256)


class UserOut(BaseModel):
    id: int
    username: str
    role: str
    grid: str | None = Field(default=None, description="The user's own grid's code")


class TokensOut(BaseModel):
    access_token: str
    refresh_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 - the OAuth2 scheme name
    expires_in: int
    user: UserOut


def _out(session: Session, tokens: accounts.Tokens) -> TokensOut:
    user = tokens.user
    assert user.id is not None
    grid = session.get(Grid, user.grid_id) if user.grid_id is not None else None
    return TokensOut(
        access_token=tokens.access_token,
        refresh_token=tokens.refresh_token,
        expires_in=tokens.expires_in,
        user=UserOut(
            id=user.id, username=user.username, role=user.role, grid=grid.code if grid else None
        ),
    )


@router.post("/login", responses=errors(429))
def login(body: LoginIn, request: Request, session: SessionDep, settings: SettingsDep) -> TokensOut:
    """Log in from a device: an access token and this device's refresh token."""
    # The peer's address: behind a reverse proxy, run uvicorn with --proxy-headers and the
    # proxy in --forwarded-allow-ips, so that this is the client's, not the proxy's.
    address = request.client.host if request.client else "unknown"
    try:
        tokens = accounts.login(
            session,
            settings,
            username=body.username,
            password=body.password,
            device_id=body.device_id,
            address=address,
            app_version=body.app_version,
        )
    except Unauthorized as exc:
        if exc.code == "bad_credentials":
            session.commit()  # the failure counts towards the rate limit, though login fails
        raise
    return _out(session, tokens)


@router.post("/refresh")
def refresh(body: RefreshIn, session: SessionDep, settings: SettingsDep) -> TokensOut:
    """Trade a refresh token for a new pair; the old one is spent."""
    try:
        return _out(session, accounts.refresh(session, settings, refresh_token=body.refresh_token))
    except Unauthorized as exc:
        if exc.code == "refresh_reused":
            session.commit()  # the copied token's chain stays revoked, though this request fails
        raise


@router.post("/logout", status_code=204)
def logout(caller: CallerDep, session: SessionDep) -> None:
    """Log out on this device: its refresh token stops working at once."""
    accounts.logout(session, user_id=caller.id, device_id=caller.device_id)
