"""What every benchmark record says about where it was measured."""

from __future__ import annotations

import datetime as dt
import os
import platform
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from offloader.tune.environment import cpu_model  # noqa: E402


def machine() -> dict:
    return {"cpu": cpu_model(), "cpus": os.cpu_count(), "python": platform.python_version(),
            "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
