"""What the contract modules share: reading a JSON object into a frozen record without losing
the fields this version does not know."""

from __future__ import annotations

from dataclasses import fields
from typing import Any, Mapping


class ContractError(ValueError):
    """A stage file that cannot be read as its contract says (a required field missing, a
    value of the wrong kind, a newer schema)."""


def split_fields(cls, data: Mapping[str, Any], what: str) -> tuple[dict, dict]:
    """(the fields `cls` declares that `data` has, the rest): the rest is kept in the record's
    `extra` and written back, so a file read and written again keeps what a newer writer added."""
    if not isinstance(data, Mapping):
        raise ContractError(f"{what} must be a JSON object, got {type(data).__name__}")
    names = {f.name for f in fields(cls)} - {"extra"}
    known = {k: v for k, v in data.items() if k in names}
    return known, {k: v for k, v in data.items() if k not in names}


def check_schema(data: Mapping[str, Any], current: int, what: str) -> int:
    schema = data.get("schema", current)
    if isinstance(schema, bool) or not isinstance(schema, int) or schema < 1:
        raise ContractError(f"{what}: schema must be a positive integer, got {schema!r}")
    if schema > current:
        raise ContractError(f"{what}: schema {schema} is newer than this offload understands ({current})")
    return schema
