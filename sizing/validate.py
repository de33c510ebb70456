"""Field checks shared by the catalog and profile loaders.

Every failure names the file and the field, so a bad input reads as one line such as
`catalog.toml: [[gpu]] #2 'T4-8C': price_per_hour must be a positive number, got -1`
instead of a traceback from deep inside the sizing code.
"""

from __future__ import annotations

import math

from offloader.errors import UserError


class Fields:
    """Reads typed fields out of one table (a TOML table or a JSON object), naming it in errors."""

    def __init__(self, table: object, where: str, file: str):
        self.where = where
        self.file = file
        if not isinstance(table, dict):
            self.fail(f"must be a table, got {_shown(table)}")
        self.table = table

    def fail(self, message: str):
        prefix = f"{self.where}: " if self.where else ""
        raise UserError(prefix + message, file=self.file)

    def _get(self, key: str, required: bool):
        if key not in self.table:
            if required:
                self.fail(f"{key} is missing")
            return None
        return self.table[key]

    def string(self, key: str, required: bool = True, choices: tuple[str, ...] = ()) -> str | None:
        value = self._get(key, required)
        if value is None:
            return None
        if not isinstance(value, str) or not value.strip():
            self.fail(f"{key} must be a non-empty string, got {_shown(value)}")
        if choices and value not in choices:
            self.fail(f"{key} must be one of {', '.join(choices)}; got {value!r}")
        return value

    def number(self, key: str, required: bool = True, positive: bool = False,
               at_most: float | None = None) -> float | None:
        value = self._get(key, required)
        if value is None:
            return None
        wanted = "a positive number" if positive else "a number >= 0"
        if at_most is not None:
            wanted += f" and at most {at_most:g}"
        if (isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)
                or value < 0 or (positive and value == 0) or (at_most is not None and value > at_most)):
            self.fail(f"{key} must be {wanted}, got {_shown(value)}")
        return float(value)

    def integer(self, key: str, required: bool = True, minimum: int = 0) -> int | None:
        value = self._get(key, required)
        if value is None:
            return None
        if isinstance(value, float) and value.is_integer():     # 3e9 bytes is a whole number too
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            self.fail(f"{key} must be an integer >= {minimum}, got {_shown(value)}")
        return value

    def list(self, key: str, required: bool = True) -> list | None:
        value = self._get(key, required)
        if value is None:
            return None
        if not isinstance(value, list):
            self.fail(f"{key} must be a list, got {_shown(value)}")
        return value


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
