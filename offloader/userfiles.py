"""Reading the JSON files users hand to offload (plans, profiles, sizings) with one clear
error naming the file, never a traceback."""

from __future__ import annotations

import json
from pathlib import Path

from .errors import UserError


def read_json_object(path: str | Path, what: str) -> dict:
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"no such {what}", file=str(path)) from None
    except IsADirectoryError:
        raise UserError(f"is a directory, not a {what} file", file=str(path)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read the {what}: {exc}", file=str(path)) from None
    except json.JSONDecodeError as exc:
        raise UserError(f"not valid JSON: {exc}", file=str(path)) from None
    if not isinstance(data, dict):
        raise UserError(f"the {what} must be a JSON object", file=str(path))
    return data
