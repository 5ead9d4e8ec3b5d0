"""Domain errors: raised by the services, turned into 4xx answers by the API."""

from __future__ import annotations

from typing import Any


class ItemRefused(Exception):  # noqa: N818 - an answer, not a failure
    """One item of a pushed batch that the server will not store, with the code and sentence
    the device shows. Not an HTTP error: the batch still answers 200, item by item."""

    def __init__(self, error: str, detail: str):
        super().__init__(detail)
        self.error = error
        self.detail = detail


class Problem(Exception):  # noqa: N818 - the HTTP "problem" a client is shown
    """A request the service refuses, with the HTTP status and a sentence naming what is wrong."""

    status_code = 400

    def __init__(
        self,
        detail: str,
        *,
        code: str | None = None,
        extra: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(detail)
        self.detail = detail
        self.code = code or type(self).__name__
        self.extra = extra or {}
        self.headers = headers or {}


class NotFound(Problem):
    status_code = 404


class Invalid(Problem):
    status_code = 422


class Conflict(Problem):
    status_code = 409


class Unauthorized(Problem):
    status_code = 401


class Forbidden(Problem):
    status_code = 403


class TooLarge(Problem):
    status_code = 413


class TooManyRequests(Problem):
    """Come back later: the answer says when in its `Retry-After` header (seconds)."""

    status_code = 429

    def __init__(self, detail: str, *, code: str, retry_after_s: int):
        super().__init__(
            detail,
            code=code,
            extra={"retry_after_s": retry_after_s},
            headers={"Retry-After": str(retry_after_s)},
        )
