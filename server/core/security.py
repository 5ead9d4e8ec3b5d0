"""Password hashing (argon2id), access tokens (JWT) and refresh tokens (random, stored hashed)."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from common import clock
from server.core.config import Settings

ALGORITHM = "HS256"


@lru_cache(maxsize=8)
def _hasher(time_cost: int, memory_kib: int) -> PasswordHasher:
    return PasswordHasher(time_cost=time_cost, memory_cost=memory_kib)


def hash_password(settings: Settings, password: str) -> str:
    return _hasher(settings.password_time_cost, settings.password_memory_kib).hash(password)


def verify_password(settings: Settings, password: str, password_hash: str) -> bool:
    try:
        return _hasher(settings.password_time_cost, settings.password_memory_kib).verify(
            password_hash, password
        )
    except (VerificationError, InvalidHashError):
        return False


@lru_cache(maxsize=8)
def dummy_hash(time_cost: int, memory_kib: int) -> str:
    """A hash to verify against when the user does not exist, so both cases take as long."""
    return _hasher(time_cost, memory_kib).hash(secrets.token_urlsafe(16))


@dataclass(frozen=True)
class AccessClaims:
    user_id: int
    device_id: str
    role: str
    generation: int


def create_access_token(
    settings: Settings, *, user_id: int, device_id: str, role: str, generation: int
) -> str:
    """A signed access token for a user on a device, in the device's token generation."""
    now = clock.now()
    payload = {
        "sub": str(user_id),
        "dev": device_id,
        "role": role,
        "gen": generation,
        "typ": "access",
        "iat": now,
        "exp": now + timedelta(minutes=settings.access_token_minutes),
    }
    return jwt.encode(payload, settings.secret_key, algorithm=ALGORITHM)


def decode_access_token(settings: Settings, token: str) -> AccessClaims:
    """The claims of a valid, unexpired access token; raises jwt.InvalidTokenError otherwise."""
    # Expiry is judged by the server's one clock (common.clock), not PyJWT's own reading of
    # the time, so that a token's life and everything else the server dates agree.
    payload = jwt.decode(
        token,
        settings.secret_key,
        algorithms=[ALGORITHM],
        options={"require": ["exp", "sub"], "verify_exp": False, "verify_iat": False},
    )
    exp = payload["exp"]
    if not isinstance(exp, int | float) or isinstance(exp, bool):
        raise jwt.InvalidTokenError("exp must be a number")
    if exp <= clock.now().timestamp():
        raise jwt.ExpiredSignatureError("the access token has expired")
    sub, dev, role = payload.get("sub"), payload.get("dev"), payload.get("role")
    if payload.get("typ") != "access" or not isinstance(dev, str) or not isinstance(role, str):
        raise jwt.InvalidTokenError("not an access token")
    if not isinstance(sub, str) or not sub.isdecimal() or len(sub) > 18:
        raise jwt.InvalidTokenError("the token's subject is not a user id")
    # A token issued before generations existed is of the first one.
    gen = payload.get("gen", 0)
    if not isinstance(gen, int) or isinstance(gen, bool):
        raise jwt.InvalidTokenError("gen must be an integer")
    return AccessClaims(user_id=int(sub), device_id=dev, role=role, generation=gen)


def new_refresh_token(settings: Settings) -> tuple[str, str, datetime]:
    """A fresh refresh token: (the token, its SHA-256 to store, its expiry)."""
    token = secrets.token_urlsafe(32)
    expires_at = clock.now() + timedelta(days=settings.refresh_token_days)
    return token, hash_refresh_token(token), expires_at


def hash_refresh_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
