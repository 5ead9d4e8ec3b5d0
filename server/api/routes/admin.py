"""Administration: users, grids, cycles, assignments, devices, and loading meters from CSV."""

from __future__ import annotations

import io
from datetime import date
from typing import Any

from fastapi import APIRouter, UploadFile
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field
from sqlmodel import Session

from server.api.deps import AdminDep, SessionDep, SettingsDep
from server.catalog import accounts, assignments, imports
from server.core.errors import Invalid, TooLarge
from server.models import User
from server.schemas.answers import ImportReportOut, errors
from server.schemas.requests import RequestModel, Text

router = APIRouter(
    prefix="/admin", tags=["admin"], responses=errors(400, 401, 403, 404, 409, 413, 422)
)


class UserCreate(RequestModel):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=8, max_length=256)
    role: str
    grid_code: str | None = Field(default=None, max_length=32)
    full_name: str = Field(default="", max_length=200)
    phone: str | None = Field(
        default=None, max_length=32, description="for a crew member: the agents call them on it"
    )


class UserContact(RequestModel):
    full_name: str | None = Field(default=None, max_length=200)
    phone: str | None = Field(
        default=None,
        max_length=32,
        description="the new number; an empty string removes it; left out, it stays",
    )


class UserPublic(BaseModel):
    id: int
    username: str
    role: str
    grid_code: str | None
    active: bool
    full_name: str = ""
    phone: str | None = None


class GridCreate(RequestModel):
    code: str = Field(min_length=1, max_length=32)
    name: str = Field(default="", max_length=200)


class GridPublic(BaseModel):
    id: int
    code: str
    name: str


class AssignmentCreate(RequestModel):
    route_code: str = Field(min_length=1, max_length=64)
    reader: str = Field(min_length=1, max_length=64)
    cycle: str = Field(min_length=1, max_length=32)
    window_start: date
    window_end: date


class AssignmentPublic(BaseModel):
    id: int
    route_code: str
    reader: str
    cycle: str
    window_start: date
    window_end: date
    status: str


class DeviceRevoked(BaseModel):
    device_id: str
    revoked_at: str


@router.post("/grids", status_code=201)
def create_grid(body: GridCreate, caller: AdminDep, session: SessionDep) -> GridPublic:
    """Create a grid (网格); users can then be created in it."""
    grid = accounts.create_grid(session, code=body.code, name=body.name, actor_id=caller.id)
    assert grid.id is not None
    return GridPublic(id=grid.id, code=grid.code, name=grid.name)


@router.post("/users", status_code=201)
def create_user(
    body: UserCreate, caller: AdminDep, session: SessionDep, settings: SettingsDep
) -> UserPublic:
    """Create a user with a role, in an existing grid (404 for an unknown grid code)."""
    user = accounts.create_user(
        session,
        settings,
        username=body.username,
        password=body.password,
        role=body.role,
        grid_code=body.grid_code,
        full_name=body.full_name,
        phone=body.phone,
        actor_id=caller.id,
    )
    return _public(session, user)


@router.patch("/users/{username}")
def update_user_contact(
    username: Text, body: UserContact, caller: AdminDep, session: SessionDep
) -> UserPublic:
    """Change a user's full name or phone (a crew's new number reaches the call centre at once)."""
    user = accounts.update_contact(
        session,
        username=username,
        full_name=body.full_name,
        phone=body.phone,
        clear_phone=body.phone is not None and not body.phone.strip(),
        actor_id=caller.id,
    )
    return _public(session, user)


def _public(session: Session, user: User) -> UserPublic:
    assert user.id is not None
    grid = accounts.grid_of(session, user)
    return UserPublic(
        id=user.id,
        username=user.username,
        role=user.role,
        grid_code=grid.code if grid else None,
        active=user.active,
        full_name=user.full_name,
        phone=user.phone,
    )


@router.post("/users/{username}/revoke")
def revoke_user(username: Text, caller: AdminDep, session: SessionDep) -> UserPublic:
    """Revoke a user: every token of theirs stops working at once."""
    return _public(session, accounts.revoke_user(session, username=username, actor_id=caller.id))


@router.post("/devices/{device_id}/revoke")
def revoke_device(device_id: Text, caller: AdminDep, session: SessionDep) -> DeviceRevoked:
    """Revoke a handheld: its tokens stop working at once and it cannot log in again."""
    device = accounts.revoke_device(session, device_id=device_id, actor_id=caller.id)
    assert device.revoked_at is not None
    return DeviceRevoked(device_id=device.id, revoked_at=device.revoked_at.isoformat())


@router.post("/assignments", status_code=201)
def create_assignment(
    body: AssignmentCreate, caller: AdminDep, session: SessionDep
) -> AssignmentPublic:
    """Give a route to a reader for a cycle (a new cycle code creates the cycle)."""
    assignment = assignments.assign_route(
        session,
        route_code=body.route_code,
        reader=body.reader,
        cycle=body.cycle,
        window_start=body.window_start,
        window_end=body.window_end,
        actor_id=caller.id,
    )
    assert assignment.id is not None
    return AssignmentPublic(
        id=assignment.id,
        route_code=body.route_code,
        reader=body.reader,
        cycle=body.cycle,
        window_start=assignment.window_start,
        window_end=assignment.window_end,
        status=assignment.status,
    )


@router.post("/meters/import", response_model=ImportReportOut)
async def import_meters(
    file: UploadFile, caller: AdminDep, session: SessionDep, settings: SettingsDep
) -> dict[str, Any]:
    """Load accounts and meters from a billing-system CSV export; all rows or none."""
    data = await file.read(settings.max_import_bytes + 1)
    if len(data) > settings.max_import_bytes:
        raise TooLarge(f"file is larger than {settings.max_import_bytes} bytes", code="too_large")
    try:
        data.decode("utf-8-sig")  # the byte at fault is named here; the import reads a stream
    except UnicodeDecodeError as exc:
        raise Invalid(f"file is not UTF-8 text (byte {exc.start})", code="not_utf8") from None
    # A large file takes seconds to check and write: keep the event loop free meanwhile.
    report = await run_in_threadpool(
        imports.import_meters_csv, session, io.BytesIO(data), actor_id=caller.id
    )
    return report.as_dict()
