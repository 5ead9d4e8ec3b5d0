"""Users, grids and devices: creating them, logging in, refreshing and revoking tokens, and
which grid's customers, jobs and outages a user may see."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, false, true
from sqlmodel import Session, col, delete, select, update

from common import clock
from common.i18n import N_
from server.core.changes import log_admin_action
from server.core.config import Settings
from server.core.errors import Conflict, Invalid, NotFound, TooManyRequests, Unauthorized
from server.core.security import (
    create_access_token,
    dummy_hash,
    hash_password,
    hash_refresh_token,
    new_refresh_token,
    verify_password,
)
from server.models import (
    ROLES,
    Account,
    Device,
    Grid,
    LoginFailure,
    Meter,
    RefreshToken,
    Route,
    User,
)


@dataclass(frozen=True)
class Tokens:
    access_token: str
    refresh_token: str
    expires_in: int
    user: User


def is_phone(text: str) -> bool:
    """A phone number as people write it: digits, spaces and dashes, perhaps a leading +
    (and so never a spreadsheet formula)."""
    return re.fullmatch(r"\+?[0-9][0-9 -]{2,30}", text) is not None


def get_or_create_grid(session: Session, *, code: str, actor_id: int | None = None) -> Grid:
    """The grid named `code`, created on first mention (naming a new code creates it)."""
    code = code.strip()
    if not code or len(code) > 32:
        raise Invalid(f"grid code {code!r} must be 1 to 32 characters", code="invalid_grid_code")
    grid = session.exec(select(Grid).where(Grid.code == code)).first()
    if grid is None:
        grid = Grid(code=code, name=code)
        session.add(grid)
        session.flush()
        log_admin_action(
            session,
            actor_id=actor_id,
            action="grid.create",
            object_type="grid",
            object_id=grid.id,
            detail={"code": code},
        )
    return grid


def create_grid(
    session: Session, *, code: str, name: str = "", actor_id: int | None = None
) -> Grid:
    """A new grid (网格); its leader is the first supervisor created in it."""
    if session.exec(select(Grid).where(Grid.code == code.strip())).first() is not None:
        raise Conflict(f"grid {code.strip()!r} already exists", code="grid_exists")
    grid = get_or_create_grid(session, code=code, actor_id=actor_id)
    grid.name = name.strip() or grid.code
    session.add(grid)
    return grid


def _existing_grid(session: Session, code: str) -> Grid:
    """A grid named when a user is created must exist: a typo would leave a supervisor leading
    an empty grid, seeing none of the routes they were meant to audit."""
    grid = session.exec(select(Grid).where(Grid.code == code.strip())).first()
    if grid is None:
        known = session.exec(select(Grid.code).order_by(col(Grid.code)).limit(20)).all()
        raise NotFound(
            f"no grid {code!r}: grids come with the meters' import (its grid_code column); "
            f"known grids: {', '.join(known) or 'none yet'}",
            code="grid_not_found",
        )
    return grid


def create_user(
    session: Session,
    settings: Settings,
    *,
    username: str,
    password: str,
    role: str,
    grid_code: str | None = None,
    full_name: str = "",
    phone: str | None = None,
    actor_id: int | None = None,
) -> User:
    """A new user; a supervisor named with a grid becomes that grid's leader if it has none."""
    username = username.strip()
    if not username or len(username) > 64:
        raise Invalid("username must be 1 to 64 characters", code="invalid_username")
    if role not in ROLES:
        raise Invalid(f"role {role!r} is not one of {', '.join(ROLES)}", code="invalid_role")
    if len(password) < 8:
        raise Invalid("password must be at least 8 characters", code="weak_password")
    if session.exec(select(User).where(User.username == username)).first() is not None:
        raise Conflict(f"user {username!r} already exists", code="user_exists")
    grid = _existing_grid(session, grid_code) if grid_code is not None else None
    if role == "supervisor" and grid is None:
        raise Invalid("a supervisor needs a grid (grid_code)", code="grid_required")
    phone = _checked_phone(phone)
    user = User(
        username=username,
        full_name=full_name,
        phone=phone,
        password_hash=hash_password(settings, password),
        role=role,
        grid_id=grid.id if grid else None,
    )
    session.add(user)
    session.flush()
    if grid is not None and role == "supervisor" and grid.leader_id is None:
        grid.leader_id = user.id
        session.add(grid)
    log_admin_action(
        session,
        actor_id=actor_id,
        action="user.create",
        object_type="user",
        object_id=user.id,
        detail={"username": username, "role": role, "grid": grid_code},
    )
    return user


def _issue(session: Session, settings: Settings, user: User, device: Device) -> Tokens:
    assert user.id is not None
    token, token_hash, expires_at = new_refresh_token(settings)
    session.add(
        RefreshToken(
            token_hash=token_hash, user_id=user.id, device_id=device.id, expires_at=expires_at
        )
    )
    access = create_access_token(
        settings,
        user_id=user.id,
        device_id=device.id,
        role=user.role,
        generation=device.token_generation,
    )
    return Tokens(access, token, settings.access_token_minutes * 60, user)


def _seconds_locked(
    session: Session, settings: Settings, column: Any, value: str, limit: int, now: datetime
) -> int:
    """How long logins for `value` (a user name or an address) stay refused: 0 while fewer than
    `limit` failures are within the window; else until the limit-th latest leaves it."""
    window = timedelta(minutes=settings.login_failure_window_minutes)
    latest = session.exec(
        select(LoginFailure.at)
        .where(col(column) == value, col(LoginFailure.at) > now - window)
        .order_by(col(LoginFailure.at).desc())
        .offset(limit - 1)
        .limit(1)
    ).first()
    if latest is None:
        return 0
    return max(1, math.ceil((latest + window - now).total_seconds()))


def _refuse_if_locked_out(
    session: Session, settings: Settings, *, username: str, address: str, now: datetime
) -> None:
    """Too many failed logins for this user name or from this address: 429, whatever the
    password, before any user is looked up, so a known and an unknown name answer alike."""
    wait = max(
        _seconds_locked(
            session,
            settings,
            LoginFailure.username,
            username,
            settings.login_max_failures_per_username,
            now,
        ),
        _seconds_locked(
            session,
            settings,
            LoginFailure.address,
            address,
            settings.login_max_failures_per_address,
            now,
        ),
    )
    if wait:
        raise TooManyRequests(
            N_("Too many failed logins: try again in {seconds} seconds."),
            params={"seconds": wait},
            code="too_many_attempts",
            retry_after_s=wait,
        )


def _count_failure(
    session: Session, settings: Settings, *, username: str, address: str, now: datetime
) -> None:
    window = timedelta(minutes=settings.login_failure_window_minutes)
    session.execute(delete(LoginFailure).where(col(LoginFailure.at) <= now - window))
    session.add(LoginFailure(username=username[:64], address=address[:64], at=now))
    session.flush()


def login(
    session: Session,
    settings: Settings,
    *,
    username: str,
    password: str,
    device_id: str,
    address: str,
    app_version: str | None = None,
) -> Tokens:
    """Check the password and issue an access token and a refresh token for this device.

    A wrong password or an unknown name is counted (the caller commits it though the login
    fails); too many of them refuse logins for a while (login_max_failures_* in settings)."""
    now = clock.now()
    _refuse_if_locked_out(session, settings, username=username, address=address, now=now)
    user = session.exec(select(User).where(User.username == username)).first()
    if user is None:
        # Verify against a dummy hash so an unknown name takes as long as a wrong password.
        verify_password(
            settings,
            password,
            dummy_hash(settings.password_time_cost, settings.password_memory_kib),
        )
    if user is None or not verify_password(settings, password, user.password_hash):
        _count_failure(session, settings, username=username, address=address, now=now)
        raise Unauthorized(N_("Wrong user name or password."), code="bad_credentials")
    session.execute(delete(LoginFailure).where(col(LoginFailure.username) == username))
    if not user.active or user.revoked_at is not None:
        raise Unauthorized(N_("This user has been revoked."), code="user_revoked")
    device = session.get(Device, device_id)
    if device is None:
        device = Device(id=device_id, first_seen_at=now)
    elif device.revoked_at is not None:
        raise Unauthorized(N_("This handheld has been revoked."), code="device_revoked")
    device.last_user_id = user.id
    device.last_seen_at = now
    device.app_version = app_version or device.app_version
    session.add(device)
    session.flush()
    tokens = _issue(session, settings, user, device)
    return tokens


def refresh(session: Session, settings: Settings, *, refresh_token: str) -> Tokens:
    """Rotate a refresh token: the old one is spent, a new pair is issued.

    A spent token presented again means it was copied: the whole chain of that user's device
    is revoked, and the device must log in again.
    """
    row = session.exec(
        select(RefreshToken).where(RefreshToken.token_hash == hash_refresh_token(refresh_token))
    ).first()
    now = clock.now()
    if row is None or row.revoked_at is not None or row.expires_at <= now:
        raise Unauthorized(
            N_("This login is no longer valid: log in again."), code="invalid_refresh"
        )
    if row.used_at is not None:
        _revoke_tokens(session, user_id=row.user_id, device_id=row.device_id)
        _end_access_tokens(session, device_id=row.device_id)
        session.flush()
        raise Unauthorized(
            N_("This login was used on another device: log in again."), code="refresh_reused"
        )
    user = session.get(User, row.user_id)
    device = session.get(Device, row.device_id)
    if user is None or not user.active or user.revoked_at is not None:
        raise Unauthorized(N_("This user has been revoked."), code="user_revoked")
    if device is None or device.revoked_at is not None:
        raise Unauthorized(N_("This handheld has been revoked."), code="device_revoked")
    row.used_at = now
    session.add(row)
    tokens = _issue(session, settings, user, device)
    session.flush()
    return tokens


def _revoke_tokens(
    session: Session, *, user_id: int | None = None, device_id: str | None = None
) -> None:
    stmt = update(RefreshToken).where(col(RefreshToken.revoked_at).is_(None))
    if user_id is not None:
        stmt = stmt.where(col(RefreshToken.user_id) == user_id)
    if device_id is not None:
        stmt = stmt.where(col(RefreshToken.device_id) == device_id)
    session.execute(stmt.values(revoked_at=clock.now()))


def _end_access_tokens(session: Session, *, device_id: str) -> None:
    """Every access token issued to the device so far stops working now (deps.get_caller)."""
    session.execute(
        update(Device)
        .where(col(Device.id) == device_id)
        .values(token_generation=col(Device.token_generation) + 1)
    )


def logout(session: Session, *, user_id: int, device_id: str) -> None:
    """Log this user out on this device: its refresh tokens die, and the device's access
    tokens with them (a handheld has one user at a time; a shared one logs in again)."""
    _revoke_tokens(session, user_id=user_id, device_id=device_id)
    _end_access_tokens(session, device_id=device_id)
    session.flush()


def revoke_device(session: Session, *, device_id: str, actor_id: int | None) -> Device:
    """Revoke a device: its tokens die at once, and it cannot log in again."""
    device = session.get(Device, device_id)
    if device is None:
        raise NotFound(f"no device {device_id!r}", code="device_not_found")
    if device.revoked_at is None:
        device.revoked_at = clock.now()
        session.add(device)
        _revoke_tokens(session, device_id=device_id)
        log_admin_action(
            session,
            actor_id=actor_id,
            action="device.revoke",
            object_type="device",
            object_id=device_id,
        )
    session.flush()
    return device


def _checked_phone(phone: str | None) -> str | None:
    phone = (phone or "").strip() or None
    if phone is not None and not is_phone(phone):
        raise Invalid(f"phone {phone!r} is not a phone number", code="invalid_phone")
    return phone


def update_contact(
    session: Session,
    *,
    username: str,
    full_name: str | None,
    phone: str | None,
    clear_phone: bool,
    actor_id: int | None,
) -> User:
    """Change how a user is named and called: crews change phones, and the call centre reads
    the number from here (None leaves a field as it is; clear_phone removes the number)."""
    user = session.exec(select(User).where(User.username == username)).first()
    if user is None:
        raise NotFound(f"no user {username!r}", code="user_not_found")
    changed: dict[str, str | None] = {}
    if full_name is not None and full_name != user.full_name:
        user.full_name = changed["full_name"] = full_name
    new_phone = None if clear_phone else _checked_phone(phone) if phone is not None else user.phone
    if new_phone != user.phone:
        user.phone = changed["phone"] = new_phone
    if changed:
        session.add(user)
        log_admin_action(
            session,
            actor_id=actor_id,
            action="user.contact",
            object_type="user",
            object_id=user.id,
            detail=changed,
        )
    session.flush()
    return user


def revoke_user(session: Session, *, username: str, actor_id: int | None) -> User:
    """Revoke a user: every token of theirs dies at once."""
    user = session.exec(select(User).where(User.username == username)).first()
    if user is None:
        raise NotFound(f"no user {username!r}", code="user_not_found")
    if user.revoked_at is None:
        user.revoked_at = clock.now()
        user.active = False
        session.add(user)
        _revoke_tokens(session, user_id=user.id)
        log_admin_action(
            session, actor_id=actor_id, action="user.revoke", object_type="user", object_id=user.id
        )
    session.flush()
    return user


def grid_of(session: Session, user: User) -> Grid | None:
    return session.get(Grid, user.grid_id) if user.grid_id is not None else None


@dataclass(frozen=True)
class GridView:
    """Which grids a user sees at the office. A supervisor (网格长) sees their own grid only;
    a call-centre agent answers every customer's call and an admin runs everything: all grids."""

    every_grid: bool
    grid_id: int | None = None

    def sees(self, grid_id: int | None) -> bool:
        return self.every_grid or (self.grid_id is not None and grid_id == self.grid_id)

    def seen(self, grid_column: Any) -> ColumnElement[bool]:
        """`sees` as an SQL condition on a grid id column (a user of no grid sees none: not
        the rows whose grid is NULL)."""
        if self.every_grid:
            return true()
        if self.grid_id is None:
            return false()
        return col(grid_column) == self.grid_id


def grid_view(user: User) -> GridView:
    """The grids `user` may see customers, jobs and outages of."""
    if user.role in ("agent", "admin"):
        return GridView(every_grid=True)
    return GridView(every_grid=False, grid_id=user.grid_id)


def visible_accounts(session: Session, view: GridView, numbers: list[str]) -> dict[str, Account]:
    """The accounts numbered `numbers` that `view` sees, by number. An account is in the grids
    of the routes its meters are on; one of another grid is left out exactly like one that does
    not exist, so that a supervisor cannot learn what other grids hold."""
    stmt = select(Account).where(col(Account.account_no).in_(numbers))
    if not view.every_grid:
        in_grid = (
            select(Meter.account_id)
            .join(Route, col(Route.id) == Meter.route_id)
            .where(view.seen(Route.grid_id))
        )
        stmt = stmt.where(col(Account.id).in_(in_grid))
    return {a.account_no: a for a in session.exec(stmt)}


def visible_account(session: Session, view: GridView, account_no: str) -> Account:
    """The account numbered `account_no` if `view` sees it; 404 alike for one of another grid
    and one that does not exist."""
    account = visible_accounts(session, view, [account_no]).get(account_no)
    if account is None:
        raise NotFound(f"no account {account_no!r}", code="account_not_found")
    return account
