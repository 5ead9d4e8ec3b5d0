"""What every request body and text parameter must be: free of NUL characters, which no text
column can hold (PostgreSQL refuses them, and a 500 would be the answer)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, model_validator


def _nul_in(value: Any, path: str) -> str | None:
    if isinstance(value, str):
        return path if "\x00" in value else None
    if isinstance(value, dict):
        items: Any = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return None
    for key, item in items:
        found = _nul_in(item, f"{path}.{key}" if path else str(key))
        if found:
            return found
    return None


def _no_nul(text: str) -> str:
    if "\x00" in text:
        raise ValueError("contains a NUL character")
    return text


# A text path or query parameter.
Text = Annotated[str, AfterValidator(_no_nul)]


class RequestModel(BaseModel):
    """A request body: a NUL character anywhere in it is refused, naming where."""

    @model_validator(mode="before")
    @classmethod
    def _no_nul_anywhere(cls, data: Any) -> Any:
        where = _nul_in(data, "")
        if where:
            raise ValueError(f"{where} contains a NUL character")
        return data
