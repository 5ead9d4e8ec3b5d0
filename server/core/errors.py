"""Domain errors: raised by the services, turned into 4xx answers by the API."""

from __future__ import annotations

from typing import Any

from common.i18n import say, translations


class ItemRefused(Exception):  # noqa: N818 - an answer, not a failure
    """One item of a pushed batch that the server will not store, with the code and sentence
    the device shows. Not an HTTP error: the batch still answers 200, item by item.

    `template` is a message id of the catalog (marked N_) and `params` its names and numbers,
    so that the sentence is said in the pusher's language; `detail` is it in English."""

    def __init__(self, error: str, template: str, **params: Any):
        self.error = error
        self.template = template
        self.params = params
        self.detail = say(template, params)
        super().__init__(self.detail)

    def said_in(self, language: str) -> str:
        """The sentence in `language` (English, the ids themselves, when it has no translation)."""
        return say(self.template, self.params, translations(language).gettext)


class Problem(Exception):  # noqa: N818 - the HTTP "problem" a client is shown
    """A request the service refuses, with the HTTP status and a sentence naming what is wrong.

    When `detail` is a message of the catalog (marked N_) with its values in `params`, the
    answer says it in the caller's language (Accept-Language); `detail` is it in English."""

    status_code = 400

    def __init__(
        self,
        detail: str,
        *,
        code: str | None = None,
        extra: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        params: dict[str, Any] | None = None,
    ):
        self.template = detail
        self.params = params or {}
        self.detail = say(detail, self.params)
        super().__init__(self.detail)
        self.code = code or type(self).__name__
        self.extra = extra or {}
        self.headers = headers or {}

    def said_in(self, language: str) -> str:
        """The sentence in `language`; as it is when the catalog does not hold it."""
        return say(self.template, self.params, translations(language).gettext)


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

    def __init__(
        self, detail: str, *, code: str, retry_after_s: int, params: dict[str, Any] | None = None
    ):
        super().__init__(
            detail,
            code=code,
            extra={"retry_after_s": retry_after_s},
            headers={"Retry-After": str(retry_after_s)},
            params=params,
        )
